"""Work units by reference: the new jobs cut into units, written as a table in the plan folder.

A full OpenImages refresh plans ~11M samples in ~22,000 units. Units are not Python objects per job:
the cut (group by image, close a unit once it holds >= samples_per_shard samples) and the content keys
are computed on columns, the jobs are written once as the units table under the plan folder
(`<plan>/units/<file>.parquet`, data/plan_ref.py), and a `WorkUnit` is a small reference to its rows:
what Prefect passes as a task parameter. `read_unit` gives the builder that unit's `ImageJob`s only.

The units table is ordered by unit, image_id, sample_id; each file holds UNITS_PER_FILE consecutive
units in row groups of UNITS_PER_ROW_GROUP whole units, with statistics on `unit` only, so reading a
unit reads a small footer and one row group (~120 KB at 512 samples a unit). The table lives as long as the plan: every build (a Prefect retry included) can
read it again until the commit removes the plan folder.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from doodleflow.data.builder import BoxJob, ImageJob
from doodleflow.data.config import CurationConfig
from doodleflow.data.fsutil import atomic_write, join
from doodleflow.data.rng import sample_seeds
from doodleflow.data.schema import BUILDER_VERSION
from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import NotFoundError

STALE_AFTER_S = 24 * 3600  # a plan folder older than this is a killed run's: the next plan removes it
UNITS_PER_FILE = 32  # a unit's read: the file's footer (~7 KB) and its row group
# Whole units per row group: a row group's fixed cost (a zstd stream per column) is about the cost of
# encoding one unit's rows, so 4 units halve the write CPU for ~100 KB more per read.
UNITS_PER_ROW_GROUP = 4
BATCH_ROWS = 1 << 18  # jobs converted to Arrow at a time while writing (bounds the planner's memory)
WRITERS = 8  # files written at once: S3 PUTs are latency-bound
# The builder's inputs, in the table's column order after `unit`.
COLUMNS = [
    "image_id",
    "sample_id",
    "uri",
    "split",
    "label",
    "label_name",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "variant",
    "seed",
    "rotation",  # OpenImages' Rotation in quarter turns counter-clockwise, applied with --upright
]


def new_plan_folder(ds: DatasetStore) -> str:
    """A fresh plan folder's path, `datasets/<name>/plans/<unix time>-<random>` (nothing written yet).
    The units table goes there first, then the rest of the plan (data/plan_ref.py)."""
    return join(ds.root, "plans", f"{int(time.time())}-{uuid.uuid4().hex[:12]}")


def drop_plan_folder(ds: DatasetStore, path: str | None) -> None:
    if path and ds.fs.exists(path):
        ds.fs.rm(path, recursive=True)


def sweep_plans(ds: DatasetStore) -> None:
    """Plans of killed runs: their folder name starts with the time they were written."""
    root = join(ds.root, "plans")
    if not ds.fs.exists(root):
        return
    for p in ds.fs.ls(root, detail=False):
        stamp = p.rstrip("/").rsplit("/", 1)[-1].split("-", 1)[0]
        if stamp.isdigit() and time.time() - int(stamp) > STALE_AFTER_S:
            ds.fs.rm(p, recursive=True)


@dataclass(frozen=True)
class WorkUnit:
    """One shard's work, by reference: its rows are unit `index` of the units table under `plan`."""

    key: str  # content key: config hash, builder version, images, their fingerprints and sample ids
    plan: str  # the plan folder (filesystem path in the store) that holds the units table
    index: int
    n_samples: int
    n_images: int

    @property
    def path(self) -> str:
        return unit_file(self.plan, self.index)


def unit_file(plan: str, index: int) -> str:
    return join(plan, "units", f"{index // UNITS_PER_FILE:06d}.parquet")


@dataclass(frozen=True)
class UnitCut:
    """The cut, as row and image offsets into the jobs in unit order (no Python object per job)."""

    order: np.ndarray | None  # row positions of the jobs in (image_id, sample_id) order; None: already
    image_rows: np.ndarray  # first row of each image, then the number of rows
    unit_images: np.ndarray  # first image of each unit, then the number of images

    @property
    def n_units(self) -> int:
        return len(self.unit_images) - 1

    def unit_rows(self, u: int) -> tuple[int, int]:
        return int(self.image_rows[self.unit_images[u]]), int(self.image_rows[self.unit_images[u + 1]])


def _text(values) -> pa.Array:
    """A string column as one large_string array (pandas 'str' columns convert without a copy)."""
    arr = pa.array(values, pa.large_string()) if not isinstance(values, pa.Array) else values
    return arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr


def _order(ids: pa.Array, sids: pa.Array) -> np.ndarray | None:
    """Row order by (image_id, sample_id); None when the jobs are in it already (the planner sorts
    them by sample_id, which starts with the image id), checked in one pass instead of sorting."""
    if len(ids) < 2:
        return None
    a, b = ids.slice(0, len(ids) - 1), ids.slice(1)
    ordered = pc.or_(
        pc.less(a, b), pc.and_(pc.equal(a, b), pc.less_equal(sids.slice(0, len(sids) - 1), sids.slice(1)))
    )
    if pc.all(ordered).as_py():
        return None
    table = pa.table({"i": ids, "s": sids})
    return pc.sort_indices(table, sort_keys=[("i", "ascending"), ("s", "ascending")]).to_numpy()


def _greedy(counts: np.ndarray, per_unit: int) -> np.ndarray:
    """First image of each unit (and the end): a unit closes at the first image that brings it to
    >= per_unit samples. One searchsorted per unit, not a Python step per image."""
    cum = np.cumsum(counts)
    bounds, start, base = [0], 0, 0
    while start < len(counts):
        j = int(np.searchsorted(cum, base + per_unit, side="left"))
        end = min(max(j, start) + 1, len(counts))
        bounds.append(end)
        base, start = int(cum[end - 1]), end
    return np.asarray(bounds, dtype=np.int64)


def cut_units(jobs: pd.DataFrame, cfg: CurationConfig) -> UnitCut:
    """Group jobs by image (one decode per image) and cut into units of ~samples_per_shard samples."""
    ids, sids = _text(jobs["image_id"]), _text(jobs["sample_id"])
    order = _order(ids, sids)
    if order is not None:
        ids = ids.take(order)
    del sids
    n = len(ids)
    if n == 0:
        return UnitCut(None, np.zeros(1, np.int64), np.zeros(1, np.int64))
    change = pc.not_equal(ids.slice(1), ids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
    image_rows = np.append(starts, n)
    return UnitCut(order, image_rows, _greedy(np.diff(image_rows), cfg.samples_per_shard))


def _keys(t: pa.Table, image_rows: np.ndarray, unit_images: np.ndarray, prefix: bytes) -> list[str]:
    """Content keys of consecutive units over the rows of `t`: the same bytes as hashing, per unit,
    `|image_id:fingerprint:` + comma-joined sample ids for each image. Each image's piece is built by
    Arrow; the pieces lie back to back in one buffer, so a unit hashes one slice of it."""
    offsets = pa.array(image_rows - image_rows[0], pa.int64())
    lists = pa.LargeListArray.from_arrays(offsets, _text(t["sample_id"].combine_chunks()))
    s = lambda v: pa.scalar(v, pa.large_string())  # noqa: E731
    joined = pc.binary_join(lists, s(","))
    first = pa.array(image_rows[:-1] - image_rows[0])
    ids = _text(t["image_id"].combine_chunks().take(first))
    fps = _text(pc.cast(t["fingerprint"].combine_chunks().take(first), pa.string()))
    pieces = pc.binary_join_element_wise(s("|"), ids, s(":"), fps, s(":"), joined, s(""))
    ends = np.frombuffer(pieces.buffers()[1], np.int64)[pieces.offset : pieces.offset + len(pieces) + 1]
    data = memoryview(pieces.buffers()[2])
    keys = []
    for u in range(len(unit_images) - 1):
        h = hashlib.sha256(prefix)
        h.update(data[ends[unit_images[u]] : ends[unit_images[u + 1]]])
        keys.append(h.hexdigest()[:24])
    return keys


def _batches(cut: UnitCut) -> Iterator[tuple[int, int]]:
    """Runs of whole files of units, ~BATCH_ROWS rows each: (first unit, end unit)."""
    n = cut.n_units
    file_ends = [min((f + 1) * UNITS_PER_FILE, n) for f in range(-(-n // UNITS_PER_FILE))]
    rows = cut.image_rows[cut.unit_images[[0, *file_ends]]]
    bounds = _greedy(np.diff(rows), BATCH_ROWS)
    for a, b in itertools.pairwise(bounds):
        yield int(a) * UNITS_PER_FILE, file_ends[int(b) - 1]


def _rows(jobs: pd.DataFrame, cut: UnitCut, r0: int, r1: int) -> pa.Table:
    part = jobs.iloc[r0:r1] if cut.order is None else jobs.iloc[cut.order[r0:r1]]
    return pa.Table.from_pandas(part, preserve_index=False).replace_schema_metadata(None)


def _write_file(fs, plan: str, t: pa.Table, cut: UnitCut, r0: int, first: int) -> None:
    """Units first.. of one file, in row groups of whole units (a unit's read touches one)."""
    sink = io.BytesIO()
    writer = None
    end = min(first + UNITS_PER_FILE, cut.n_units)
    for u in range(first, end, UNITS_PER_ROW_GROUP):
        us = np.arange(u, min(u + UNITS_PER_ROW_GROUP, end))
        a, b = cut.unit_rows(int(us[0]))[0], cut.unit_rows(int(us[-1]))[1]
        sizes = np.diff(cut.image_rows[cut.unit_images[[*us, us[-1] + 1]]])
        part = t.slice(a - r0, b - a)
        part = part.add_column(0, "unit", pa.array(np.repeat(us.astype(np.int32), sizes)))
        if writer is None:
            # No dictionaries: few repeats in a row group, and a faster encode.
            writer = pq.ParquetWriter(
                sink, part.schema, compression="zstd", use_dictionary=False, write_statistics=["unit"]
            )
        writer.write_table(part, row_group_size=b - a)
    if writer is not None:
        writer.close()
        atomic_write(fs, unit_file(plan, first), sink.getvalue())


def make_units(jobs: pd.DataFrame, cfg: CurationConfig, fs, plan: str) -> list[WorkUnit]:
    """Cut `jobs` into units, write the units table under the plan folder `plan` (a path on `fs`),
    return the references. Keys and cut are those of the per-object planner they replace, byte for
    byte: a rerun after a crash finds the shards the previous run built."""
    cut = cut_units(jobs, cfg)
    if cut.n_units == 0:
        return []  # nothing new: no table (the frame may not even have the builder's columns)
    if "seed" not in jobs.columns:  # the planner leaves seeds to the jobs that get built
        jobs = jobs.assign(seed=sample_seeds(jobs, cfg.seed))
    if "rotation" not in jobs.columns:  # planned without --upright: every image as stored
        jobs = jobs.assign(rotation=0)
    prefix = f"{cfg.content_hash()}|{BUILDER_VERSION}".encode()
    jobs = jobs[[*COLUMNS, "fingerprint"]]
    units: list[WorkUnit] = []
    with ThreadPoolExecutor(WRITERS) as pool:
        for u0, u1 in _batches(cut):
            r0, r1 = cut.unit_rows(u0)[0], cut.unit_rows(u1 - 1)[1]
            t = _rows(jobs, cut, r0, r1)
            img = cut.unit_images[u0 : u1 + 1]
            keys = _keys(t, cut.image_rows[img[0] : img[-1] + 1], img - img[0], prefix)
            for u, key in zip(range(u0, u1), keys, strict=True):
                a, b = cut.unit_rows(u)
                n_img = int(cut.unit_images[u + 1] - cut.unit_images[u])
                units.append(WorkUnit(key, plan, u, b - a, n_img))
            t = t.drop_columns(["fingerprint"])
            firsts = range(u0, u1, UNITS_PER_FILE)
            list(pool.map(lambda f, t=t, r0=r0: _write_file(fs, plan, t, cut, r0, f), firsts))
    return units


def _row_groups(md: pq.FileMetaData, index: int) -> list[int]:
    """Row groups whose `unit` statistics may hold `index`."""
    col = md.schema.names.index("unit")
    out = []
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(col).statistics
        if st is None or not st.has_min_max or st.min <= index <= st.max:
            out.append(i)
    return out


def read_unit(fs, unit: WorkUnit) -> list[ImageJob]:
    """The unit's jobs, as the builder takes them: only this unit's rows are read."""
    try:
        with fs.open(unit.path, "rb") as f:
            pf = pq.ParquetFile(f)
            t = pf.read_row_groups(_row_groups(pf.metadata, unit.index))
    except FileNotFoundError as e:
        raise NotFoundError(
            f"work unit {unit.key}: its plan {unit.plan} is gone (committed or swept); run the refresh again"
        ) from e
    t = t.filter(pc.equal(t["unit"], unit.index))
    if t.num_rows != unit.n_samples:
        raise RuntimeError(
            f"work unit {unit.key}: {t.num_rows} rows in {unit.path}, planned {unit.n_samples}"
        )
    return _image_jobs(t)


def _image_jobs(t: pa.Table) -> list[ImageJob]:
    c = {k: t[k].to_pylist() for k in COLUMNS}
    images, start, n = [], 0, t.num_rows
    for i in range(1, n + 1):
        if i < n and c["image_id"][i] == c["image_id"][start]:
            continue
        boxes = tuple(
            BoxJob(
                c["sample_id"][j],
                c["label"][j],
                c["label_name"][j],
                (c["xmin"][j], c["ymin"][j], c["xmax"][j], c["ymax"][j]),
                int(c["variant"][j]),
                int(c["seed"][j]),
            )
            for j in range(start, i)
        )
        rot = int(c["rotation"][start] or 0)
        images.append(ImageJob(str(c["image_id"][start]), c["uri"][start], c["split"][start], boxes, rot))
        start = i
    return images
