"""The `dataset-refresh` flow: OpenImages boxes -> Paint-by-Example triples -> a new dataset version.

Wiring only: plan (validates every input first), build shards in parallel (retried, cached by unit
key, skipped when already in the store), commit atomically, attach a report.
"""

from __future__ import annotations

import os
import time

from doodleflow.data.config import CurationConfig
from doodleflow.data.report import artifact_key, label_counts, markdown, reason_table, throughput
from doodleflow.data.store import DatasetStore
from doodleflow.flows import runtime
from doodleflow.flows.results import on_store
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.curation import build_shard as build_shard_task
from doodleflow.tasks.curation import commit, plan_refresh
from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context
from prefect.futures import as_completed


def _submit_shards(build_shard, units, cfg, store, dataset):
    """On Ray, spread shards over the nodes: submission is slower than a shard, so the default
    (prefer the driver's node) would keep a cluster's other nodes idle."""
    runner = get_run_context().task_runner
    if type(runner).__name__ != "RayTaskRunner":
        return build_shard.map(units, unmapped(cfg), unmapped(store), unmapped(dataset))
    from prefect_ray.context import remote_options

    with remote_options(scheduling_strategy="SPREAD"):
        return build_shard.map(units, unmapped(cfg), unmapped(store), unmapped(dataset))


def _build_all(units, cfg, store, dataset, logger) -> list[dict]:
    build_shard = on_store(build_shard_task, store)
    futures = _submit_shards(build_shard, units, cfg, store, dataset)
    total = sum(u.n_samples for u in units)
    t0, done_samples, results = time.perf_counter(), 0, {}
    for i, fut in enumerate(as_completed(futures), start=1):
        s = fut.result()
        if fut.state.name == "Cached":  # Prefect's cache answered: nothing was built this run
            s = {**s, "reused": True}
        results[s["key"]] = s
        done_samples += s["rows"]
        rate = done_samples / max(time.perf_counter() - t0, 1e-9)
        logger.info(
            f"shard {i}/{len(units)} {s['key'][:12]}: {s['rows']} samples in {s['seconds']:.2f}s"
            f"{' (already built)' if s.get('reused') else ''}; {done_samples}/{total} "
            f"samples, {rate:.1f} samples/s"
        )
    # Prefect's cache can outlive the store (a wiped or different bucket): rebuild what is missing.
    ds = DatasetStore(store, dataset)
    missing = [u for u in units if ds.shard_stats(u.key) is None]
    for u in missing:
        logger.warning(f"shard {u.key[:12]} cached by Prefect but absent from the store: rebuilding")
        results[u.key] = build_shard.with_options(refresh_cache=True)(u, cfg, store, dataset)
    return [results[u.key] for u in units]


@flow(name="dataset-refresh")
def dataset_refresh(
    source: str,
    dataset: str,
    store: str | None = None,
    images: str | None = None,
    seed: int = 0,
    variants: int = 1,
    samples_per_shard: int = 512,
    update_fiftyone: bool = False,
) -> dict:
    logger = get_run_logger()
    store = resolve_store(store)
    cfg = CurationConfig(seed=seed, variants=variants, samples_per_shard=samples_per_shard)
    t0 = time.perf_counter()
    plan, diff, units = plan_refresh(source, images, cfg, store, dataset)
    logger.info(
        f"planned {len(plan.jobs)} samples from {plan.inputs['images']} images; "
        f"{len(diff.new_jobs)} new in {len(units)} shards (previous version: {diff.previous})"
    )
    stats = _build_all(units, cfg, store, dataset, logger)
    run_id = str(get_run_context().flow_run.id)
    summary = commit(store, dataset, cfg, plan, diff, stats, run_id, source)
    speed = throughput(stats, time.perf_counter() - t0, os.cpu_count() or 1)
    summary["throughput"] = speed
    _publish(summary, speed, store, dataset)
    if update_fiftyone:  # last step: users look at the data before they spend GPU hours on it
        from doodleflow.tasks.inspection import update_fiftyone as update_fo

        summary["fiftyone"] = update_fo(store, dataset, summary["version"], runtime.home())
    logger.info(
        f"dataset {dataset} version {summary['version']}: {summary['samples_total']} samples "
        f"({summary['samples_new']} new) at {summary['path']}"
    )
    return summary


def _publish(summary: dict, speed: dict, store: str, dataset: str) -> None:
    labels = (
        label_counts(DatasetStore(store, dataset), summary["version"]) if summary["samples_total"] else {}
    )
    key = artifact_key("refresh", dataset)
    create_markdown_artifact(markdown(summary, labels, speed), key=key, description="dataset refresh summary")
    create_table_artifact(
        reason_table(summary) or [{"kind": "-", "reason": "none", "count": 0}],
        key=f"{key}-reasons",
        description="dropped and quarantined boxes by reason",
    )
