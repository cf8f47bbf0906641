"""Which OpenImages images to fetch, streamed from the image index into chunk files.

The image index (`<split>-images[-boxable]-with-rotation.csv`: ImageID, ..., OriginalSize,
OriginalMD5, ..., Rotation) is read in Arrow record batches, only the four columns used, so memory is
bounded by the batch and the chunk, not by the 1.74M-row train index. The selection is written as
`<work>/chunk-NNNNNN.parquet` files of at most `chunk_images` rows (image_id, size, md5, rotation):
the unit of work of a fetch, read back by the task that downloads it.
"""

from __future__ import annotations

import base64
import binascii
import glob
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from doodleflow.data.errors import ConfigError, InputError
from doodleflow.data.fsutil import atomic_write, filesystem

INDEX_COLUMNS = ("ImageID", "OriginalSize", "OriginalMD5", "Rotation")
CHUNK_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string()),
        pa.field("size", pa.int64()),  # OriginalSize: bytes of the original file
        pa.field("md5", pa.string()),  # OriginalMD5 as hex (the index has base64 of the 16-byte digest)
        pa.field("rotation", pa.float64()),  # degrees counter-clockwise; null when unknown (nan)
    ]
)


def md5_hex(b64: str | None) -> str | None:
    """OriginalMD5 is base64 of the raw 16-byte MD5 digest (e.g. `KFukvivpCM5QXl5SqKe41g==`), the form
    HTTP's Content-MD5 uses; None when it is not one."""
    if not b64:
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


@dataclass(frozen=True)
class Selection:
    ids: pa.Array | None  # only these ImageIDs (classes, an absent list); None: the whole split
    limit: int | None  # then at most this many: the smallest ImageIDs (random hex: a uniform sample)


def _stream(path: str, columns: tuple[str, ...], types: dict) -> pacsv.CSVStreamingReader:
    opts = pacsv.ConvertOptions(include_columns=list(columns), column_types=types, strings_can_be_null=False)
    try:
        return pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=8 << 20), convert_options=opts)
    except (pa.ArrowInvalid, KeyError) as e:
        raise InputError(f"{path}: unreadable CSV or a column of {', '.join(columns)} missing ({e})") from e


def class_images(bbox_csv: str, labels: list[str]) -> pa.Array:
    """The distinct ImageIDs with a box of one of `labels` (MIDs), streaming the bbox CSV."""
    value_set = pa.array(labels, pa.string())
    found: list[pa.Array] = []
    for batch in _stream(bbox_csv, ("ImageID", "LabelName"), {}):
        keep = pc.is_in(batch.column("LabelName"), value_set=value_set)
        found.append(pc.unique(pc.filter(batch.column("ImageID"), keep)))
    return pc.unique(pa.chunked_array(found, pa.string())) if found else pa.array([], pa.string())


def resolve_classes(names: tuple[str, ...], classes: dict[str, str]) -> list[str]:
    """Display names (any case) or MIDs -> MIDs; an unknown one is a one-line error naming it."""
    by_name = {v.lower(): k for k, v in classes.items()}
    out = []
    for n in names:
        mid = n if n in classes else by_name.get(n.strip().lower())
        if mid is None:
            raise ConfigError(f"--classes: no class {n!r} in class-descriptions-boxable.csv")
        out.append(mid)
    return out


def absent_images(store: str, dataset: str) -> pa.Array:
    """The ImageIDs of the latest version's `_absent_images.parquet` (docs/curation.md)."""
    from doodleflow.data.store import DatasetStore
    from doodleflow.infra.errors import NotFoundError

    ds = DatasetStore(store, dataset)
    v = ds.latest()
    if v is None:
        raise NotFoundError(
            f"--absent {dataset}: no such dataset in {store} (`doodleflow datasets` lists them)"
        )
    try:
        return ds.read_table(v, ["image_id"], name="_absent_images.parquet")["image_id"].combine_chunks()
    except FileNotFoundError as e:
        raise NotFoundError(f"--absent {dataset}: version {v} has no _absent_images.parquet") from e


def _to_chunk(batch: pa.RecordBatch) -> pa.Table:
    md5 = [md5_hex(v) for v in batch.column("OriginalMD5").to_pylist()]
    rot = batch.column("Rotation")
    rot = pc.cast(rot, pa.float64()) if rot.type != pa.float64() else rot
    return pa.table(
        [
            batch.column("ImageID"),
            pc.cast(batch.column("OriginalSize"), pa.int64()),
            pa.array(md5, pa.string()),
            pc.if_else(pc.is_nan(rot), pa.scalar(None, pa.float64()), rot),
        ],
        schema=CHUNK_SCHEMA,
    )


def _batches(index_csv: str, sel: Selection):
    types = {
        "ImageID": pa.string(),
        "OriginalSize": pa.int64(),
        "OriginalMD5": pa.string(),
        "Rotation": pa.float64(),
    }
    for batch in _stream(index_csv, INDEX_COLUMNS, types):
        if sel.ids is not None:
            batch = batch.filter(pc.is_in(batch.column("ImageID"), value_set=sel.ids))
        if batch.num_rows:
            yield _to_chunk(batch)


def _smallest(index_csv: str, sel: Selection) -> pa.Table:
    """The `limit` smallest ImageIDs, keeping at most limit + one batch of rows."""
    keep = CHUNK_SCHEMA.empty_table()
    for t in _batches(index_csv, sel):
        keep = pa.concat_tables([keep, t])
        keep = keep.take(pc.sort_indices(keep["image_id"])[: sel.limit])
    return keep


def write_chunks(index_csv: str, sel: Selection, work: str, chunk_images: int) -> tuple[int, int]:
    """Write the selection as chunk files under `work` (previous chunks removed first); returns
    (chunks, images)."""
    os.makedirs(work, exist_ok=True)
    for old in glob.glob(os.path.join(work, "chunk-*.parquet")):
        os.unlink(old)
    fs, _ = filesystem(work)
    tables = [_smallest(index_csv, sel)] if sel.limit is not None else _batches(index_csv, sel)
    pending, n_chunks, n_images = CHUNK_SCHEMA.empty_table(), 0, 0

    def flush(t: pa.Table) -> None:
        nonlocal n_chunks
        sink = pa.BufferOutputStream()
        pq.write_table(t, sink)
        atomic_write(fs, os.path.join(work, f"chunk-{n_chunks:06d}.parquet"), sink.getvalue().to_pybytes())
        n_chunks += 1

    for t in tables:
        pending = pa.concat_tables([pending, t])
        n_images += t.num_rows
        while pending.num_rows >= chunk_images:
            flush(pending.slice(0, chunk_images))
            pending = pending.slice(chunk_images)
    if pending.num_rows:
        flush(pending)
    return n_chunks, n_images


def chunk_files(work: str) -> list[str]:
    return sorted(glob.glob(os.path.join(work, "chunk-*.parquet")))
