"""The triage cache: each annotation file's triage, independent of the images root, kept in the store
so that a refresh whose only change is new images does not parse the annotation CSVs again.

    <store>/datasets/<name>/triage/<key>/
        kept.parquet        every kept row (boxes.KEPT_SCHEMA), grouped by image, ~8192-row row groups
        images.parquet      one row per image with kept rows: image_id, start, rows, boxes, dups
        quarantine.parquet  the file's quarantine rows
        meta.json           file, split, drop counts, row counts, the file's size and sha256; written
                            last, so an entry without it (a killed writer) is a miss

The key hashes TRIAGE_VERSION, the file's uri, size and change tag (mtime locally, ETag on S3, as
data/snapshot.py trusts them), the class list's, the box filter config and the columns it needs: one
entry per annotation file, so a change to one file costs one parse. Planning always goes through the
cache: a miss reads, triages and writes the entry (the file's sha256 hashed beside), then reads it as a
hit does: images.parquet, presence against the listing, and only the row groups of present images.
After a plan, entries of files no longer planned are removed (`prune`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from doodleflow.data.boxes import KEPT_SCHEMA, ROW_GROUP, FileScan, TriagedFile, scan_file
from doodleflow.data.config import BoxFilterConfig
from doodleflow.data.fsutil import filesystem, is_local, join, sweep_temporary, temp_beside
from doodleflow.data.openimages import read_bbox_table
from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import TransientError
from fsspec.parquet import open_parquet_file

# Bump when the triage of the same file can change (boxes.py, openimages.read_bbox_table): old
# entries then miss and are pruned.
TRIAGE_VERSION = "1"
META = "meta.json"
STALE_WRITE_S = 3600.0  # an entry without meta.json this long after its last write is a dead writer's
_DICTIONARY = ["image_id", "label"]
_PARQUET = {
    "compression": "snappy",
    "use_dictionary": _DICTIONARY,
    "column_encoding": {"line": "DELTA_BINARY_PACKED"},  # lines ascend within an image
    "write_statistics": False,
}


def entry_key(stat: dict, classes_stat: dict, boxes: BoxFilterConfig, need: tuple[str, ...]) -> str:
    """The entry of one annotation file; `stat`s are data/snapshot.file_stat's (uri, size, tag)."""
    head = {
        "version": TRIAGE_VERSION,
        "file": {k: stat[k] for k in ("uri", "size", "tag")},
        "classes": {k: classes_stat[k] for k in ("uri", "size", "tag")},
        "boxes": asdict(boxes),
        "need": list(need),
    }
    return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()[:32]


def entry_path(ds: DatasetStore, key: str) -> str:
    return join(ds.root, "triage", key)


def file_record(uri: str) -> dict:
    """Size and sha256 of an input file, hashed in 8 MB reads (never held whole)."""
    fs, path = filesystem(uri)
    h, n = hashlib.sha256(), 0
    with fs.open(path, "rb", block_size=8 << 20) as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            n += len(chunk)
    return {"uri": uri, "bytes": n, "sha256": h.hexdigest()}


def cached_triage(
    ds: DatasetStore,
    key: str,
    uri: str,
    classes: dict[str, str],
    cfg: BoxFilterConfig,
    need: tuple[str, ...],
    hasher: Executor,
) -> tuple[TriagedFile, dict]:
    """The file's triage and provenance record: from its entry, else parsed, triaged and stored first."""
    hit = load(ds, key)
    if hit is not None:
        return hit
    bt = read_bbox_table(uri, need)
    record = hasher.submit(file_record, uri)  # hashlib releases the GIL: beside the one-core triage
    scan = scan_file(bt, classes, cfg)
    write(ds, key, scan, record.result)
    del bt, scan
    hit = load(ds, key)
    if hit is None:  # only a concurrent plan of this dataset with other inputs prunes a fresh entry
        raise TransientError(f"{entry_path(ds, key)}: removed right after it was written; run again")
    return hit


def write(ds: DatasetStore, key: str, scan: FileScan, record: Callable[[], dict]) -> None:
    """Write one entry; `record()` gives the file's provenance once the Parquet files are written."""
    path = entry_path(ds, key)
    with _sink(ds, join(path, "kept.parquet")) as sink, pq.ParquetWriter(sink, KEPT_SCHEMA, **_PARQUET) as w:
        for t in scan.kept_tables():
            w.write_table(t, row_group_size=ROW_GROUP)
    _write_table(ds, join(path, "images.parquet"), scan.images)
    _write_table(
        ds, join(path, "quarantine.parquet"), pa.Table.from_pandas(scan.quarantine, preserve_index=False)
    )
    meta = {
        "triage_version": TRIAGE_VERSION,
        "key": key,
        "file": scan.bt.file,
        "split": scan.bt.split,
        "rows": scan.bt.table.num_rows,
        "kept": len(scan.kept.rows),
        "images": scan.images.num_rows,
        "quarantined": len(scan.quarantine),
        "dropped": scan.dropped,
        "record": record(),
        "written_at": time.time(),
    }
    _put(ds, join(path, META), json.dumps(meta, sort_keys=True).encode())  # last: the entry is whole


def load(ds: DatasetStore, key: str) -> tuple[TriagedFile, dict] | None:
    """A complete entry as a TriagedFile (reads its kept rows on demand), or None."""
    path = entry_path(ds, key)
    try:
        meta = json.loads(ds.fs.cat_file(join(path, META)))
        if meta.get("key") != key or meta.get("triage_version") != TRIAGE_VERSION:
            return None
        images = _read_table(ds, join(path, "images.parquet"))
        quarantine = _read_table(ds, join(path, "quarantine.parquet")).to_pandas()
        kept = _KeptRows(ds, join(path, "kept.parquet"), images["rows"].to_numpy(zero_copy_only=False))
    except (OSError, ValueError):  # none, half removed or damaged (ArrowInvalid is a ValueError): a miss
        return None
    tf = TriagedFile(meta["file"], meta["split"], quarantine, meta["dropped"], images, kept.read)
    return tf, meta["record"]


class _KeptRows:
    """kept.parquet, read by row group: only the groups that hold a selected image's rows. On S3 the
    byte ranges of those groups are fetched concurrently (fsspec.parquet), not one request each."""

    def __init__(self, ds: DatasetStore, path: str, rows: np.ndarray) -> None:
        self.fs, self.path, self.rows = ds.fs, path, rows
        if is_local(ds.fs):
            md = pq.read_metadata(path)
        else:
            with ds.fs.open(path, "rb", block_size=1 << 20) as f:  # the footer, not 50 MB ahead
                md = pq.read_metadata(f)
        sizes = np.array([md.row_group(i).num_rows for i in range(md.num_row_groups)], np.int64)
        self.ends = np.cumsum(sizes)
        self.starts = self.ends - sizes
        total = int(self.ends[-1]) if len(self.ends) else 0
        if total != int(rows.sum()):
            raise pa.ArrowInvalid(f"{path}: {total} rows, images.parquet says {int(rows.sum())}")

    def read(self, images: np.ndarray, columns: list[str]) -> pa.Table:
        sel = np.repeat(images, self.rows)
        groups = [g for g in range(len(self.starts)) if sel[self.starts[g] : self.ends[g]].any()]
        if not groups:
            return KEPT_SCHEMA.empty_table().select(columns)
        with self._open(groups, columns) as src:
            # Strings stay dictionary-encoded until the rows are selected (most rows read are not).
            t = pq.ParquetFile(src, read_dictionary=_DICTIONARY).read_row_groups(groups, columns=columns)
        t = t.filter(pa.array(np.concatenate([sel[self.starts[g] : self.ends[g]] for g in groups])))
        return t.cast(pa.schema([KEPT_SCHEMA.field(c) for c in columns]))  # strings decoded

    def _open(self, groups: list[int], columns: list[str]):
        if is_local(self.fs):
            return pa.OSFile(self.path)
        return open_parquet_file(self.path, fs=self.fs, columns=columns, row_groups=groups, engine="pyarrow")


def prune(ds: DatasetStore, keep: set[str]) -> list[str]:
    """Remove the entries not in `keep` (files that changed or left), sparing a live writer's; and the
    temporary files a killed writer left in the kept ones. Returns the entries removed."""
    root = join(ds.root, "triage")
    try:
        entries = ds.fs.ls(root, detail=False)
    except FileNotFoundError:
        return []
    removed = []
    for p in entries:
        if posixpath.basename(p.rstrip("/")) in keep:
            if is_local(ds.fs):
                sweep_temporary([p])
        elif ds.fs.exists(join(p, META)) or _idle_s(ds, p) > STALE_WRITE_S:
            ds.fs.rm(p, recursive=True)
            removed.append(p)
    return removed


def _idle_s(ds: DatasetStore, path: str) -> float:
    newest = 0.0
    for info in ds.fs.ls(path, detail=True):
        m = info.get("mtime", info.get("LastModified", 0))
        newest = max(newest, m.timestamp() if hasattr(m, "timestamp") else float(m or 0))
    return time.time() - newest


@contextlib.contextmanager
def _sink(ds: DatasetStore, path: str) -> Iterator:
    """A file written whole or not at all: on S3 a multipart upload, visible only once complete;
    locally fsutil's temporary file beside it (named with its writer, as sweep_temporary expects),
    renamed into place. No fsync: this is a cache, and an entry damaged by a power loss reads as a
    miss."""
    if not is_local(ds.fs):
        f = ds.fs.open(path, "wb")
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()  # abort the multipart upload: nothing half-written becomes visible
            raise
        f.close()
        return
    with temp_beside(path) as tmp:
        with pa.OSFile(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)


def _put(ds: DatasetStore, path: str, data: bytes) -> None:
    with _sink(ds, path) as f:
        f.write(data)


def _write_table(ds: DatasetStore, path: str, table: pa.Table) -> None:
    with _sink(ds, path) as f:
        pq.write_table(table, f, compression="snappy", use_dictionary=False)  # ids are unique


def _read_table(ds: DatasetStore, path: str) -> pa.Table:
    with ds.fs.open(path, "rb") as f:
        return pq.read_table(f)
