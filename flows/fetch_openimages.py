"""The `fetch-openimages` flow: OpenImages annotation files and verified images into the layout
`doodleflow refresh` reads (data/oi_fetch.py says what goes where).

Wiring only: plan (annotation files, the selection in chunks), download the chunks on the task
runner the refresh uses (a local process pool, or Ray), each chunk in threads, then the report.
Progress: one terminal line and the run's progress artifact, per finished chunk.
"""

from __future__ import annotations

import time

from doodleflow.data.oi_fetch import FetchConfig
from doodleflow.tasks.fetch import fetch_images, fetch_report, plan_fetch
from doodleflow.tasks.progress import StageProgress, artifact_key
from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed


def _config(config: dict) -> FetchConfig:
    return FetchConfig(**{**config, "classes": tuple(config.get("classes") or ())})


@flow(name="fetch-openimages")
def fetch_openimages(config: dict) -> dict:
    """`config`: the fields of data.oi_fetch.FetchConfig (`dest` required)."""
    logger = get_run_logger()
    cfg = _config(config)
    t0 = time.perf_counter()
    logger.info(f"fetch {cfg.split}: annotation files and the selection into {cfg.dest}")
    plan = plan_fetch(cfg)
    logger.info(
        f"fetch {cfg.split}: {plan.images} images selected in {len(plan.chunks)} chunks from {cfg.images_from}"
    )
    stage = StageProgress(
        f"fetch {cfg.split}", max(plan.images, 1), artifact_key("progress", "fetch", cfg.split)
    )
    stats, done, nbytes = [], 0, 0
    for fut in as_completed(fetch_images.map(plan.chunks, unmapped(cfg))):
        s = fut.result()
        stats.append(s)
        done, nbytes = done + s["images"], nbytes + s["bytes"]
        el = time.perf_counter() - t0
        failed = sum(v for k, v in s["counts"].items() if k not in ("downloaded", "skipped"))
        stage.update(
            done,
            f"{done}/{plan.images} images, {nbytes / 1e6:.1f} MB ({done / el:.1f} images/s, "
            f"{nbytes / 1e6 / el:.1f} MB/s), chunk {s['chunk']}: {failed} failed",
        )
    stage.close()
    summary = fetch_report(cfg, plan, stats, time.perf_counter() - t0)
    create_markdown_artifact(
        _markdown(summary), key=artifact_key("fetch", cfg.split), description="OpenImages fetch"
    )
    logger.info(_text(summary))
    return summary


def _text(s: dict) -> str:
    return (
        f"fetched {s['split']}: {s['downloaded']} downloaded, {s['skipped']} already verified, {s['failed']} failed "
        f"(missing {s['missing']}, size {s['size_mismatch']}, md5 {s['md5_mismatch']}, error {s['error']}) "
        f"of {s['selected']} selected, into {s['images_root']}"
    )


def _markdown(s: dict) -> str:
    rows = "\n".join(
        f"| {k} | {s[k]} |"
        for k in (
            "selected",
            "downloaded",
            "skipped",
            "missing",
            "size_mismatch",
            "md5_mismatch",
            "error",
            "bytes",
            "seconds",
            "images_per_s",
            "verify",
            "source",
        )
    )
    return (
        f"# OpenImages fetch: {s['split']}\n\n| | |\n|---|---|\n{rows}\n\nFailures: `{s['failures_csv']}`\n"
    )
