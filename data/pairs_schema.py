"""The Parquet schemas of a PhotoDoodle pair dataset version (documented in docs/training-photodoodle.md).

One row per (source, target) editing pair. JPEG bytes are stored as read when the input already is a
baseline-decodable JPEG, otherwise re-encoded once at quality 95 (PNG inputs), so a training run never
touches the original files again.
"""

from __future__ import annotations

import pyarrow as pa

PAIRS_SCHEMA_VERSION = 1
PAIRS_BUILDER_VERSION = "pairs-2"  # 2: EXIF orientation applied to both sides
PAIRS_ROW_GROUP_SIZE = 16  # pairs are larger than triples: fewer per row group

PAIR_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("artist", pa.string(), nullable=False),  # the style / artist the pair belongs to
        pa.field("trigger", pa.string(), nullable=False),  # e.g. "sksmagiceffects"; captions end with it
        pa.field("captions", pa.list_(pa.string()), nullable=False),  # one is drawn per step
        pa.field("source_jpeg", pa.binary(), nullable=False),  # the "before" image (the condition)
        pa.field("target_jpeg", pa.binary(), nullable=False),  # the "after" image (what is learned)
        pa.field("width", pa.int32(), nullable=False),  # of the source
        pa.field("height", pa.int32(), nullable=False),
        pa.field("target_size", pa.list_(pa.int32(), 2)),  # (w, h); same aspect as the source
        pa.field("source_path", pa.string()),  # relative to the ingest source root
        pa.field("target_path", pa.string()),
    ],
    metadata={"doodleflow.schema": f"photodoodle-pairs/{PAIRS_SCHEMA_VERSION}"},
)

PAIR_QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),  # meta.jsonl or the image file that failed
        pa.field("line", pa.int64()),  # 1-based line in meta.jsonl, 0 for the plain-folder layout
        pa.field("pair_id", pa.string()),
        pa.field("artist", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
QUARANTINE_COLUMNS = [f.name for f in PAIR_QUARANTINE_SCHEMA]

PAIR_INPUTS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("target_uri", pa.string()),
        pa.field("fingerprint", pa.string()),
    ]
)


def pairs_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["pair_id"]), schema=PAIR_SCHEMA)


def quarantine_table(rows: list[dict]) -> pa.Table:
    rows = sorted(rows, key=lambda r: (r["reason"], r["file"], r["line"], r["pair_id"]))
    return pa.Table.from_pylist(rows, schema=PAIR_QUARANTINE_SCHEMA)
