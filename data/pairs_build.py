"""Build one unit of pairs into one Parquet shard: read, verify, normalise to JPEG, quarantine.

A unit's key hashes the builder version and every pair's fingerprint, so a shard is built once: a
rerun (or a retried task) finds its stats file in the store and returns at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass

from doodleflow.data.fsutil import filesystem
from doodleflow.data.imageio import UnreadableImage, decode_rgb, encode_jpeg, is_jpeg
from doodleflow.data.orientation import apply_exif, exif_orientation
from doodleflow.data.pairs_schema import PAIRS_BUILDER_VERSION, PAIRS_ROW_GROUP_SIZE, pairs_table
from doodleflow.data.pairs_source import PairJob, reject_row
from doodleflow.data.parquet import parquet_bytes
from doodleflow.data.store import DatasetStore

JPEG_QUALITY = 95  # only for inputs that are not JPEG already (PNG); JPEGs are stored as read
ASPECT_TOLERANCE = 0.02  # target and source must show the same frame, give or take a resize


@dataclass(frozen=True)
class PairUnit:
    key: str
    jobs: tuple[PairJob, ...]


def make_units(jobs: list[PairJob], pairs_per_shard: int) -> list[PairUnit]:
    units = []
    for i in range(0, len(jobs), max(1, pairs_per_shard)):
        chunk = tuple(jobs[i : i + pairs_per_shard])
        ident = [PAIRS_BUILDER_VERSION] + [[j.pair_id, j.fingerprint] for j in chunk]
        units.append(PairUnit(hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:24], chunk))
    return units


def _read(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


@dataclass(frozen=True)
class Side:
    jpeg: bytes
    size: tuple[int, int]  # (w, h) as displayed: after the EXIF orientation
    orientation: int  # the file's EXIF Orientation (1: none)


def _as_jpeg(buf: bytes) -> Side:
    """The image upright as JPEG bytes; decoding fully also rejects truncated files. A JPEG without
    an EXIF rotation is kept byte for byte; one with it is turned as its EXIF says and re-encoded
    (q95), so every reader sees it upright whether or not it honours EXIF."""
    rgb = decode_rgb(buf)
    o = exif_orientation(buf)
    if o != 1:
        rgb = apply_exif(rgb, o)
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    return Side(buf if is_jpeg(buf) and o == 1 else encode_jpeg(rgb, JPEG_QUALITY), size, o)


def _where(job: PairJob, rel: str) -> tuple[str, int]:
    """The file and line a pair's reject names: its meta.jsonl line, else (plain layout) the file."""
    return (job.meta_file, job.meta_line) if job.meta_line else (rel, 0)


def _side_text(kind: str, side: Side) -> str:
    (w, h), o = side.size, side.orientation
    return f"{kind} {w}x{h}" + (
        f" (EXIF Orientation {o} applied; stored {h}x{w})"
        if o in (5, 6, 7, 8)
        else (f" (EXIF Orientation {o} applied)" if o != 1 else "")
    )


def mismatch_detail(src: Side, tgt: Side) -> str | None:
    """None when both show the same frame (aspect within ASPECT_TOLERANCE), else why not."""
    (w, h), (tw, th) = src.size, tgt.size
    if abs(w / h - tw / th) <= ASPECT_TOLERANCE * (w / h):
        return None
    text = f"{_side_text('source', src)}, {_side_text('target', tgt)}: not the same frame"
    if abs(w / h - th / tw) <= ASPECT_TOLERANCE * (w / h):  # a quarter turn apart
        text += "; the sides are swapped: one image is turned and no EXIF Orientation says so"
    return text


def build_pair(job: PairJob) -> tuple[dict | None, dict | None]:
    """(row, None) for a good pair, (None, quarantine row) for a bad one."""
    images: dict[str, Side] = {}
    for kind, uri, rel in (
        ("source", job.source_uri, job.source_rel),
        ("target", job.target_uri, job.target_rel),
    ):
        try:
            images[kind] = _as_jpeg(_read(uri))
        except FileNotFoundError:
            return None, reject_row(
                *_where(job, rel),
                job.pair_id,
                job.artist,
                f"missing_{kind}",
                f"{rel} vanished after planning",
            )
        except UnreadableImage as e:
            return None, reject_row(rel, 0, job.pair_id, job.artist, "unreadable_image", f"{kind}: {e}")
    src, tgt = images["source"], images["target"]
    bad = mismatch_detail(src, tgt)
    if bad is not None:  # a problem of the pair: named by its meta.jsonl line, the files in the detail
        bad = f"{job.source_rel} and {job.target_rel}: {bad}"
        return None, reject_row(*_where(job, job.target_rel), job.pair_id, job.artist, "size_mismatch", bad)
    row = {
        "pair_id": job.pair_id,
        "artist": job.artist,
        "trigger": job.trigger,
        "captions": list(job.captions),
        "source_jpeg": src.jpeg,
        "target_jpeg": tgt.jpeg,
        "width": src.size[0],
        "height": src.size[1],
        "target_size": list(tgt.size),
        "source_path": job.source_rel,
        "target_path": job.target_rel,
    }
    return row, None


def build_pairs_unit(unit: PairUnit, store_uri: str, dataset: str) -> dict:
    """Build (or find already built) the shard of `unit`; returns its stats. Transient read errors
    (OSError other than a missing file) propagate so the orchestrator retries the unit."""
    ds = DatasetStore(store_uri, dataset)
    done = ds.shard_stats(unit.key)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    rows, quarantined = [], []
    for job in unit.jobs:
        row, bad = build_pair(job)
        if row is not None:
            rows.append(row)
        else:
            quarantined.append(bad)
    stats = {
        "rows": len(rows),
        "pairs": len(unit.jobs),
        "quarantined": quarantined,
        "artists": dict(Counter(r["artist"] for r in rows)),
        "seconds": round(time.perf_counter() - t0, 4),
    }
    return {
        **ds.write_shard(unit.key, parquet_bytes(pairs_table(rows), PAIRS_ROW_GROUP_SIZE), stats),
        "reused": False,
    }
