"""`doodleflow fetch openimages`, the library side: annotation files, the selection, the report.

A fetch writes the layout `doodleflow refresh --source DEST` reads:

    DEST/class-descriptions-boxable.csv
    DEST/<split bbox csv>                    e.g. oidv6-train-annotations-bbox.csv
    DEST/<split image index>                 e.g. train-images-boxable-with-rotation.csv
    DEST/images/<split>/<ImageID>.jpg        every one verified (data/oi_download.py)
    DEST/fetch-report-<split>.json           counts; DEST/fetch-failures-<split>.csv lists each failure
    DEST/.fetch/<split>/chunk-*.parquet      the selection, in chunks (the units of work)

`prepare` and `finish` are the steps around the downloads; `fetch_in_process` runs all three here
(threads only), the Prefect flow (flows/fetch_openimages.py) spreads the chunks over its task runner.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field

from doodleflow.data.errors import ConfigError
from doodleflow.data.fsutil import atomic_write, filesystem, sweep_temporary
from doodleflow.data.oi_download import REASONS, DownloadConfig, fetch_chunk
from doodleflow.data.oi_remote import CLASS_FILE, FILES, PUBLIC_BUCKET, SPLITS, fetch_annotation
from doodleflow.data.oi_select import (
    Selection,
    absent_images,
    chunk_files,
    class_images,
    resolve_classes,
    write_chunks,
)


@dataclass(frozen=True)
class FetchConfig:
    dest: str  # a local directory: the refresh's --source
    split: str = "train"
    images_from: str = PUBLIC_BUCKET
    annotations_from: str | None = None  # None: the official https files
    classes: tuple[str, ...] = ()
    limit: int | None = None
    absent: str | None = None  # a dataset whose latest version's absent images to fetch
    store: str | None = None  # where that dataset is
    verify: str = "auto"  # index | etag | auto (etag for the public bucket's rescaled copies, else index)
    anonymous: bool | None = None  # None: unsigned for the public bucket or when no credentials are set
    threads: int = 16
    retries: int = 2
    chunk_images: int = 250  # a task each: progress and resume granularity (~0.6 s at 1 Gbit/s)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.verify not in ("auto", "index", "etag"):
            raise ConfigError(f"--verify must be index, etag or auto, got {self.verify!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        if self.threads < 1 or self.retries < 0 or self.chunk_images < 1:
            raise ConfigError("--threads and chunk_images must be >= 1, --retries >= 0")
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise ConfigError(f"--dest {self.dest}: not a directory")
        if "://" in self.dest:
            raise ConfigError(f"--dest {self.dest}: a local directory (the images are renamed into place)")
        if self.absent and self.classes:
            raise ConfigError("--absent and --classes select images two ways: give one")

    @property
    def work(self) -> str:
        return os.path.join(self.dest, ".fetch", self.split)

    def download(self) -> DownloadConfig:
        public = self.images_from.rstrip("/") == PUBLIC_BUCKET
        verify = self.verify if self.verify != "auto" else ("etag" if public else "index")
        anonymous = self.anonymous
        if anonymous is None:
            anonymous = public or not os.environ.get("AWS_ACCESS_KEY_ID")
        return DownloadConfig(
            self.images_from.rstrip("/"),
            os.path.join(self.dest, "images"),
            self.split,
            verify,
            anonymous,
            self.threads,
            self.retries,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FetchPlan:
    chunks: list[str]
    images: int
    files: dict = field(default_factory=dict)  # annotation file name -> local path


def prepare(cfg: FetchConfig) -> FetchPlan:
    """Annotation files into DEST, the selection into chunk files; a killed writer's temps swept."""
    os.makedirs(cfg.dest, exist_ok=True)
    anonymous = cfg.download().anonymous
    bbox_name, index_name = FILES[cfg.split]
    files = {
        n: fetch_annotation(cfg.annotations_from, n, cfg.dest, anonymous)
        for n in (CLASS_FILE, bbox_name, index_name)
    }
    sweep_temporary([os.path.join(cfg.dest, "images", cfg.split)])
    ids = None
    if cfg.classes:
        from doodleflow.data.openimages import read_class_descriptions

        mids = resolve_classes(cfg.classes, read_class_descriptions(files[CLASS_FILE]))
        ids = class_images(files[bbox_name], mids)
    elif cfg.absent:
        from doodleflow.infra.settings import resolve_store

        ids = absent_images(resolve_store(cfg.store), cfg.absent)
    _, n_images = write_chunks(files[index_name], Selection(ids, cfg.limit), cfg.work, cfg.chunk_images)
    return FetchPlan(chunk_files(cfg.work), n_images, files)


def finish(cfg: FetchConfig, plan: FetchPlan, stats: list[dict], seconds: float) -> dict:
    """Sum the chunks' counts, write the report and the failure list (atomically); the summary."""
    counts = dict.fromkeys(("downloaded", "skipped", *REASONS), 0)
    failures = []
    for s in stats:
        for k, v in s["counts"].items():
            counts[k] += v
        failures += s["failures"]
    nbytes = sum(s["bytes"] for s in stats)
    summary = {
        "split": cfg.split,
        "dest": os.path.abspath(cfg.dest),
        "images_root": os.path.join(os.path.abspath(cfg.dest), "images"),
        "source": cfg.images_from,
        "verify": cfg.download().verify,
        "selected": plan.images,
        **counts,
        "failed": sum(counts[r] for r in REASONS),
        "bytes": nbytes,
        "seconds": round(seconds, 3),
        "images_per_s": round((counts["downloaded"] + counts["skipped"]) / seconds, 2)
        if seconds > 0
        else None,
        "report": os.path.join(os.path.abspath(cfg.dest), f"fetch-report-{cfg.split}.json"),
        "failures_csv": os.path.join(os.path.abspath(cfg.dest), f"fetch-failures-{cfg.split}.csv"),
    }
    fs, _ = filesystem(cfg.dest)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["image_id", "reason", "detail"], lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(failures, key=lambda f: f["image_id"]))
    atomic_write(fs, summary["failures_csv"], buf.getvalue().encode())
    atomic_write(fs, summary["report"], json.dumps(summary, indent=2, sort_keys=True).encode())
    return summary


def fetch_in_process(cfg: FetchConfig, on_done=None) -> dict:
    """The whole fetch in this process (threads only): scripts, tests and the benchmark."""
    import time

    t0 = time.perf_counter()
    plan = prepare(cfg)
    dl = cfg.download()
    stats = [fetch_chunk(c, dl, on_done) for c in plan.chunks]
    return finish(cfg, plan, stats, time.perf_counter() - t0)
