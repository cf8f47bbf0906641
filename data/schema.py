"""The Parquet schemas of a Paint-by-Example dataset version (documented in docs/dataset-schema.md)."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
BUILDER_VERSION = "3"  # bump when sample bytes change for the same config; part of every shard key
# 2: bilinear after 2x2-box halving instead of INTER_AREA, power-of-two DCT scales only, per-sample scale.
# 3: mask PNG deflated by ISA-L (level 1) instead of libpng's zlib: other bytes, the same pixels.

box4 = pa.list_(pa.float64(), 4)
ibox4 = pa.list_(pa.int32(), 4)

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("label_name", pa.string()),
        pa.field("split", pa.string()),
        pa.field("variant", pa.int16()),
        pa.field("seed", pa.int64()),
        pa.field("box", box4),
        pa.field("box_px", ibox4),
        pa.field("extended_box_px", ibox4),
        pa.field("crop_window_px", ibox4),
        pa.field("reference_box_px", ibox4),
        pa.field("image_size", pa.list_(pa.int32(), 2)),
        pa.field("mask_kind", pa.string()),
        pa.field("aug_params", pa.string()),
        pa.field("decode_scale", pa.float32()),
        pa.field("target_jpeg", pa.binary(), nullable=False),
        pa.field("mask_png", pa.binary(), nullable=False),
        pa.field("reference_jpeg", pa.binary(), nullable=False),
    ],
    metadata={"doodleflow.schema": f"pbe-samples/{SCHEMA_VERSION}"},
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("image_id", pa.string()),
        pa.field("label", pa.string()),
        pa.field("sample_id", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

INPUTS_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string()),
        pa.field("uri", pa.string()),
        pa.field("fingerprint", pa.string()),
    ]
)


def samples_table(rows: list[dict]) -> pa.Table:
    rows = sorted(rows, key=lambda r: r["sample_id"])
    return pa.Table.from_pylist(rows, schema=SAMPLE_SCHEMA)
