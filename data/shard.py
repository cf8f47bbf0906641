"""Build one work unit into one Parquet shard: the unit of parallelism, retry and resume.

The unit is a reference (data/units.py): its jobs are read here, from the units table in the plan
folder, so only this unit's jobs are ever in this process's memory."""

from __future__ import annotations

import time
from collections import Counter

from doodleflow.data.builder import build_image
from doodleflow.data.config import CurationConfig
from doodleflow.data.faults import delay
from doodleflow.data.fsutil import filesystem
from doodleflow.data.parquet import parquet_bytes
from doodleflow.data.schema import samples_table
from doodleflow.data.store import DatasetStore
from doodleflow.data.units import WorkUnit, read_unit


def _read(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def build_unit(unit: WorkUnit, cfg: CurationConfig, store_uri: str, dataset: str, worker: str = "") -> dict:
    """Build (or find already built) the shard of `unit`; returns its stats.

    Idempotent: a shard whose stats file exists is complete (stats are written after the Parquet),
    so a retried or rerun unit returns at once, without reading the units table (a rerun after a crash
    finds the previous run's shards by key). Transient read errors (OSError other than a missing file)
    propagate so the orchestrator retries the unit.
    """
    ds = DatasetStore(store_uri, dataset)
    done = ds.shard_stats(unit.key)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    delay("build-shard")  # tests only: a slow shard, so a node can be lost mid-refresh
    images = read_unit(ds.fs, unit)
    rows: list[dict] = []
    quarantined: list[dict] = []
    dropped: list[dict] = []
    for img in images:
        try:
            buf = _read(img.uri)
        except FileNotFoundError:
            res_q = [(b, "missing_image", f"{img.uri} vanished after planning") for b in img.boxes]
            quarantined += [_reject(img.image_id, b, r, d) for b, r, d in res_q]
            continue
        res = build_image(img, buf, cfg)
        rows += res.rows
        quarantined += [_reject(img.image_id, b, r, d) for b, r, d in res.quarantined]
        dropped += [_reject(img.image_id, b, r, "") for b, r in res.dropped]
    table = samples_table(rows)
    stats = {
        "rows": table.num_rows,
        "images": len(images),
        "quarantined": quarantined,
        "dropped": dropped,
        "labels": dict(Counter(r["label_name"] for r in rows)),
        "seconds": round(time.perf_counter() - t0, 4),
        "worker": worker,
    }
    return {**ds.write_shard(unit.key, parquet_bytes(table, cfg.row_group_size), stats), "reused": False}


def _reject(image_id: str, job, reason: str, detail: str) -> dict:
    return {
        "file": "",
        "line": 0,
        "image_id": image_id,
        "label": job.label,
        "sample_id": job.sample_id,
        "reason": reason,
        "detail": detail,
    }
