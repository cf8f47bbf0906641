"""Parquet bytes and content digests shared by every dataset kind (PbE triples, PhotoDoodle pairs).

One writer so that the same rows always give the same bytes, whatever the kind: that is what lets a
rerun on unchanged inputs find the content it would write already committed.
"""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def parquet_bytes(table: pa.Table, row_group_size: int = 32) -> bytes:
    """Small row groups so a reader can stream a shard. Binary columns (JPEG/PNG bytes) are stored
    uncompressed and without statistics (they do not compress and min/max of images means nothing);
    the rest use zstd and dictionaries. Deterministic: equal tables give equal bytes."""
    binary = {f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)}
    other = [c for c in table.column_names if c not in binary]
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        row_group_size=row_group_size,
        compression={c: ("none" if c in binary else "zstd") for c in table.column_names},
        use_dictionary=other,
        write_statistics=other,
    )
    return sink.getvalue()


def content_hash(files: list[dict], rejects: list[pd.DataFrame | pa.Table]) -> str:
    """A version's content: its parts' sha256 (in any order: part names follow input fingerprints,
    content does not) and its reject tables (quarantine, dropped), row order ignored."""
    h = hashlib.sha256()
    for sha in sorted(f["sha256"] for f in files):
        h.update(sha.encode())
    for t in rejects:
        df = t.to_pandas() if isinstance(t, pa.Table) else t
        rows = pd.util.hash_pandas_object(df.sort_values(list(df.columns)), index=False)
        h.update(rows.to_numpy().tobytes())
    return h.hexdigest()
