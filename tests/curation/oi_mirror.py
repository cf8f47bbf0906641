"""An OpenImages mirror on moto's S3 (loopback), served to anonymous readers like the CVDF's public
bucket: real annotation excerpts and a real OpenImages train photo (tests/fixtures/openimages-excerpts,
SOURCES.md), plus objects made wrong on purpose (truncated, one byte changed, missing)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "openimages-excerpts")
PENGUIN_ID = "0c7b2e492da6ba02"
# The five official Penguin boxes of 0c7b2e492da6ba02 in pixels of its 1109x832 original (end-exclusive).
PENGUIN_BOXES = [
    (88, 396, 242, 617),
    (222, 386, 375, 628),
    (524, 268, 646, 539),
    (688, 228, 808, 487),
    (822, 151, 1065, 264),
]
PENGUIN_SIZE = (1109, 832)
TRUNCATED, CHANGED = "b000000000000001", "b000000000000002"
# In the real index head, not in the mirror: their downloads are "missing".
REAL_INDEX_IDS = ("4fa8054781a4c382", "b37f763ae67d0888")


def fixture(name: str) -> bytes:
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def copies(n: int) -> list[str]:
    """ImageIDs that stand for n more photos in the mirror (the penguin photo's bytes)."""
    return [f"a{i:015x}" for i in range(n)]


def _bbox_rows(image_ids: list[str]) -> list[str]:
    w, h = PENGUIN_SIZE
    rows = []
    for iid in image_ids:
        for x0, y0, x1, y1 in PENGUIN_BOXES:
            # +0.5 px: int(coord * size) lands back on the official pixel box
            xs, ys = ((x0 + 0.5) / w, (x1 + 0.5) / w), ((y0 + 0.5) / h, (y1 + 0.5) / h)
            rows.append(f"{iid},xclick,/m/05z6w,1,{xs[0]:.6f},{xs[1]:.6f},{ys[0]:.6f},{ys[1]:.6f},0,0,0,0,0")
    return rows


def _index_row(iid: str, size: int, md5: str, rotation: str = "0.0") -> str:
    return f"{iid},train,,,https://creativecommons.org/licenses/by/2.0/,,,,{size},{md5},,{rotation}"


def make_mirror(fs, bucket: str, n_copies: int = 2) -> dict:
    """Write the mirror into `bucket` (an s3fs filesystem with credentials) and make it publicly
    readable; returns {image_id: bytes} of the objects that are right."""
    photo = fixture(f"{PENGUIN_ID}.jpg")
    good = {PENGUIN_ID: photo} | dict.fromkeys(copies(n_copies), photo)
    changed = bytearray(photo)
    changed[len(photo) // 2] ^= 0xFF
    objects = good | {TRUNCATED: photo[: len(photo) // 2], CHANGED: bytes(changed)}
    for iid, data in objects.items():
        fs.pipe_file(f"{bucket}/train/{iid}.jpg", data)
    bbox_head = fixture("oidv6-train-annotations-bbox.head.csv").decode().splitlines()
    bbox_head = [",".join(r.split(",")[:13]) for r in bbox_head]  # the 13-column layout
    ids = [PENGUIN_ID, *copies(n_copies), TRUNCATED, CHANGED]
    fs.pipe_file(
        f"{bucket}/oidv6-train-annotations-bbox.csv",
        "\n".join([*bbox_head, *_bbox_rows(ids)]).encode() + b"\n",
    )
    index = fixture("train-images-boxable-with-rotation.head.csv").decode().splitlines()
    index += [
        _index_row(i, len(photo), b64md5(photo)) for i in ids
    ]  # right size and MD5, also for the bad ones
    fs.pipe_file(f"{bucket}/train-images-boxable-with-rotation.csv", "\n".join(index).encode() + b"\n")
    fs.pipe_file(f"{bucket}/class-descriptions-boxable.csv", fixture("class-descriptions-boxable.csv"))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    fs.call_s3("put_bucket_policy", Bucket=bucket, Policy=json.dumps(policy))
    return good
