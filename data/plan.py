"""Planning a refresh: annotations (through the triage cache, data/triage_cache.py) and the images
listing -> sample jobs. data/refresh.py diffs them with the previous version; data/units.py cuts the
new ones into work units.

Planning reads only annotations and a listing of the images root (no pixels), so it is cheap and
deterministic: the same inputs and previous version always give the same work units with the same
keys, which is what lets a rerun after a crash skip every shard that was already written.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from doodleflow.data.boxes import ABSENT_SCHEMA, QUARANTINE_COLUMNS, BoxTriage, combine, split_by_presence
from doodleflow.data.config import CurationConfig
from doodleflow.data.errors import InputError
from doodleflow.data.listing import fingerprints, list_images
from doodleflow.data.openimages import SourceLayout, locate_source, read_class_descriptions
from doodleflow.data.snapshot import Snapshot, file_stat
from doodleflow.data.store import DatasetStore
from doodleflow.data.triage_cache import cached_triage, entry_key, file_record, prune

ABSENT_WARN_FRACTION = 0.5  # warn when more than this share of the annotated images is not downloaded


@dataclass
class InputPlan:
    """Everything the inputs say, before comparing with the store. Sized by the images present (the
    work), not by the annotation files: absent images are one row each in `absent`."""

    jobs: pd.DataFrame  # one row per sample to exist in the version
    images: pd.DataFrame  # image_id, uri, fingerprint of the images the jobs use (the input snapshot)
    triage: BoxTriage
    quarantine: pd.DataFrame  # annotation rows (+ boxes of absent images with require_images)
    inputs: dict  # files the plan came from, with sizes and hashes; counts of absent images
    absent: pa.Table = field(default_factory=ABSENT_SCHEMA.empty_table)  # image_id, boxes
    warnings: list[str] = field(default_factory=list)
    unchanged: dict | None = None  # inputs known to make the latest version: its summary, nothing planned
    kept_count: int | None = None  # a plan read back for the commit keeps the count, not the rows

    @property
    def boxes_kept(self) -> int:
        return len(self.triage.kept) if self.kept_count is None else self.kept_count

    @classmethod
    def skipped(cls, summary: dict) -> InputPlan:
        """No plan: the input snapshot matched the latest version's (data/snapshot.py)."""
        empty = pd.DataFrame(columns=["image_id", "uri", "fingerprint"])
        triage = BoxTriage(pd.DataFrame(), pd.DataFrame(columns=QUARANTINE_COLUMNS), {})
        return cls(
            pd.DataFrame(columns=["image_id", "sample_id"]),
            empty,
            triage,
            triage.quarantine,
            {},
            unchanged=summary,
        )


def _stats(layout: SourceLayout, snapshot: Snapshot | None) -> dict[str, dict]:
    """Size and change tag of every input file: the snapshot's when there is one (taken before
    any read, so an entry never pairs newer bytes with an older tag), else read now."""
    if snapshot is not None:
        return {f["uri"]: f for f in snapshot.files}
    return {u: file_stat(u) for u in (layout.class_descriptions, *layout.bbox_csvs)}


@contextlib.contextmanager
def _cache(store: DatasetStore | None) -> Iterator[DatasetStore]:
    """The store that keeps the triage cache; without one, a temporary one (the same code path)."""
    if store is not None:
        yield store
        return
    with tempfile.TemporaryDirectory(prefix="doodleflow-triage-") as tmp:
        yield DatasetStore(tmp, "plan")


def _used_images(listing: pa.Table, kept: pd.DataFrame) -> pd.DataFrame:
    used = listing.filter(
        pc.is_in(listing["image_id"], value_set=pa.array(kept["image_id"].unique(), pa.string()))
    )
    return pd.DataFrame(
        {
            "image_id": used["image_id"].to_pylist(),
            "uri": used["uri"].to_pylist(),
            "fingerprint": fingerprints(used),
        },
        dtype=object,  # strings, also when no image is used (an empty frame would default to float)
    )


def _rotations(layout: SourceLayout, index: pd.DataFrame, cfg: CurationConfig) -> pd.Series | None:
    """With `upright`: each used image's quarter turns (data/oi_rotation.py), also written into its
    fingerprint (`...:r<turns>`), so a rotated image's samples are rebuilt when the switch or its
    rotation changes and every other image's carry over."""
    if not cfg.upright:
        return None
    from doodleflow.data.oi_rotation import read_rotations

    turns = read_rotations(layout, index["image_id"])
    index["fingerprint"] = index["fingerprint"].where(
        turns == 0, index["fingerprint"] + ":r" + turns.astype(str)
    )
    return pd.Series(turns.to_numpy(), index=index["image_id"].to_numpy())


def _absent_warning(absent: pa.Table, present: int, root: str) -> list[str]:
    n = absent.num_rows
    if not n or n / (n + present) <= ABSENT_WARN_FRACTION:
        return []
    boxes = pc.sum(absent["boxes"]).as_py()
    return [
        f"{n} of {n + present} annotated images ({100 * n / (n + present):.2f}%) are not under {root}: "
        f"their {boxes} boxes make no samples; the version's _absent_images.parquet lists them "
        "(--require-images quarantines them instead)"
    ]


def plan_inputs(
    source: str,
    images: str | None,
    cfg: CurationConfig,
    snapshot: Snapshot | None = None,
    store: DatasetStore | None = None,
) -> InputPlan:
    """Triage every annotation file (data/triage_cache.py: parsed once per file version, kept in
    `store`'s dataset, or a temporary store) against the images root listing; `snapshot`
    (data/snapshot.py) brings the layout, file stats and listing when the caller already took them."""
    layout = snapshot.layout if snapshot else locate_source(source, images)
    classes = read_class_descriptions(layout.class_descriptions)
    need = (("IsGroupOf",) if cfg.boxes.drop_group_of else ()) + (
        ("IsDepiction",) if cfg.boxes.drop_depiction else ()
    )
    listing = snapshot.listing if snapshot else list_images(layout.images_root)
    if listing.num_rows == 0:
        raise InputError(f"images root {layout.images_root}: no *.jpg files")
    present = listing["image_id"].combine_chunks()
    stats = _stats(layout, snapshot)
    files, records, keys = [], [], set()
    with _cache(store) as ds, ThreadPoolExecutor(max_workers=1) as hasher:
        for uri in layout.bbox_csvs:  # one file in memory at a time, and only on a miss
            key = entry_key(stats[uri], stats[layout.class_descriptions], cfg.boxes, need)
            triaged, record = cached_triage(ds, key, uri, classes, cfg.boxes, need, hasher)
            files.append(split_by_presence(triaged, present, cfg.require_images))
            records.append(record)
            keys.add(key)
        triage = combine(files)
        prune(ds, keys)  # entries of files that changed or left
    inputs: dict[str, Any] = {
        "class_descriptions": file_record(layout.class_descriptions),
        "annotations": records,
    }
    index = _used_images(listing, triage.kept)
    rotation = _rotations(layout, index, cfg)
    kept = triage.kept.merge(index, on="image_id", how="inner")
    if rotation is not None:
        kept["rotation"] = kept["image_id"].map(rotation).astype("int64")
    jobs = _expand_variants(kept, classes, cfg)
    quarantine = triage.quarantine
    if triage.missing is not None and len(triage.missing):
        missing = triage.missing.assign(detail="no <shard>/<ImageID>.jpg under " + layout.images_root)
        quarantine = pd.concat([quarantine, missing], ignore_index=True)
    absent = ABSENT_SCHEMA.empty_table() if cfg.require_images else triage.absent  # quarantined instead
    absent_boxes = int(pc.sum(absent["boxes"]).as_py() or 0)
    inputs |= {
        "images_root": layout.images_root,
        "images": listing.num_rows,
        "images_absent": absent.num_rows,
        "boxes_absent": absent_boxes,
        "snapshot": snapshot.digest if snapshot else None,
    }
    warnings = _absent_warning(absent, index["image_id"].nunique(), layout.images_root)
    inputs["warnings"] = warnings
    quarantine = quarantine.reindex(columns=QUARANTINE_COLUMNS)
    return InputPlan(jobs, index, triage, quarantine, inputs, absent, warnings)


def _expand_variants(kept: pd.DataFrame, classes: dict[str, str], cfg: CurationConfig) -> pd.DataFrame:
    frames = []
    for v in range(cfg.variants):
        f = kept.copy()
        f["variant"] = v
        frames.append(f)
    jobs = pd.concat(frames, ignore_index=True) if frames else kept.assign(variant=0)
    jobs["sample_id"] = jobs["image_id"] + "-" + jobs["box_key"] + "-v" + jobs["variant"].astype(str)
    # No seeds here: a sha256 per job, and only the new jobs are built (data/units.py derives theirs).
    jobs["label_name"] = jobs["label"].map(classes)
    return jobs.sort_values("sample_id").reset_index(drop=True)
