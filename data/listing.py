"""Listing an images root into Arrow, streamed: a local tree by `os.scandir`, an S3 prefix page by page.

A listing is one row per image file (image_id = file stem, uri, size, mtime or ETag), built in chunks of
`CHUNK` entries: no per-file dict and no list of the whole root in Python objects (a 1.74M-file root is
one Arrow table of ~150 MB). Fingerprints ("size:mtime" locally, "size:ETag" on S3, the format every
version's `_inputs.parquet` has used) are formatted only for the images a plan needs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from doodleflow.data.fsutil import filesystem, is_local

IMAGE_EXTS = (".jpg", ".jpeg")
CHUNK = 65536
LISTING_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string()),
        pa.field("uri", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.float64()),  # local files (st_mtime); null on S3
        pa.field("etag", pa.string()),  # S3 objects; null locally
    ]
)


def _batch(ids: list, uris: list, sizes: list, mtimes: list | None, etags: list | None) -> pa.RecordBatch:
    n = len(ids)
    return pa.record_batch(
        [
            pa.array(ids, pa.string()),
            pa.array(uris, pa.string()),
            pa.array(sizes, pa.int64()),
            pa.array(mtimes, pa.float64()) if mtimes is not None else pa.nulls(n, pa.float64()),
            pa.array(etags, pa.string()) if etags is not None else pa.nulls(n, pa.string()),
        ],
        schema=LISTING_SCHEMA,
    )


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def _scan_local(root: str) -> Iterator[pa.RecordBatch]:
    ids, uris, sizes, mtimes = [], [], [], []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir():
                    stack.append(e.path)
                elif _is_image(e.name):
                    st = e.stat()
                    ids.append(os.path.splitext(e.name)[0])
                    uris.append(e.path)
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime)
                    if len(ids) >= CHUNK:
                        yield _batch(ids, uris, sizes, mtimes, None)
                        ids, uris, sizes, mtimes = [], [], [], []
    if ids:
        yield _batch(ids, uris, sizes, mtimes, None)


def _scan_s3(fs, path: str, page_size: int = 1000) -> Iterator[pa.RecordBatch]:
    """ListObjectsV2, one page (<= 1000 keys) at a time; each page becomes one Arrow batch."""
    bucket, _, prefix = path.partition("/")
    prefix = f"{prefix.rstrip('/')}/" if prefix else ""
    token = None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        kw |= {"ContinuationToken": token} if token else {}
        page = fs.call_s3("list_objects_v2", **kw)
        objs = [o for o in page.get("Contents", []) if _is_image(o["Key"].rsplit("/", 1)[-1])]
        if objs:
            yield _batch(
                [os.path.splitext(o["Key"].rsplit("/", 1)[-1])[0] for o in objs],
                [f"s3://{bucket}/{o['Key']}" for o in objs],
                [int(o.get("Size", 0)) for o in objs],
                None,
                [str(o.get("ETag", "")).strip('"') for o in objs],
            )
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


def list_images(images_root: str, page_size: int = 1000) -> pa.Table:
    """Every *.jpg / *.jpeg under the root, sorted by uri; an ImageID found twice (two shard folders)
    keeps its first uri in that order, deterministically."""
    fs, root = filesystem(images_root)
    batches = _scan_local(root) if is_local(fs) else _scan_s3(fs, root, page_size)
    t = pa.Table.from_batches(list(batches), schema=LISTING_SCHEMA)
    t = t.take(pc.sort_indices(t["uri"])) if t.num_rows else t
    if t.num_rows and pc.count_distinct(t["image_id"]).as_py() < t.num_rows:
        first = (
            t.append_column("_i", pa.array(np.arange(t.num_rows)))
            .group_by("image_id", use_threads=False)
            .aggregate([("_i", "min")])
        )
        t = t.take(np.sort(first["_i_min"].to_numpy()))
    return t.combine_chunks()


def fingerprints(t: pa.Table) -> list[str]:
    """'size:mtime' (6 decimals) locally, 'size:ETag' on S3: the change fingerprint of each row."""
    sizes, mtimes, etags = (t[c].to_pylist() for c in ("size", "mtime", "etag"))
    return [f"{s}:{e}" if m is None else f"{s}:{m:.6f}" for s, m, e in zip(sizes, mtimes, etags, strict=True)]


def listing_digest(t: pa.Table) -> str:
    """A digest of the whole listing (uris, sizes, mtimes/ETags), over Arrow buffers: no per-row work."""
    h = hashlib.sha256(f"{t.num_rows}".encode())
    for col in ("uri", "size", "mtime", "etag"):
        arr = t[col].combine_chunks() if t.num_rows else pa.array([], t.schema.field(col).type)
        for buf in arr.buffers():
            if buf is not None:
                h.update(memoryview(buf))
    return h.hexdigest()
