"""The images listing (data/listing.py): the same rows and fingerprints as the fsspec listing it replaced
(so earlier versions' `_inputs.parquet` fingerprints still match), and S3 listed page by page."""

from __future__ import annotations

import os
import posixpath

from doodleflow.data.fsutil import filesystem
from doodleflow.data.listing import fingerprints, list_images, listing_digest


def _fsspec_index(images_root: str) -> list[tuple[str, str, str]]:
    """How planning listed images before: fsspec find, sorted paths, the first path of an ImageID."""
    fs, root = filesystem(images_root)
    s3 = images_root.startswith("s3://")
    seen, out = set(), []
    for path, info in sorted(fs.find(root, detail=True).items()):
        stem, ext = posixpath.splitext(posixpath.basename(path))
        if ext.lower() not in (".jpg", ".jpeg") or stem in seen:
            continue
        seen.add(stem)
        tag = info.get("ETag", "").strip('"') if s3 else f"{info.get('mtime', 0):.6f}"
        out.append((stem, f"s3://{path}" if s3 else path, f"{info.get('size', 0)}:{tag}"))
    return out


def _rows(images_root: str, **kw) -> list[tuple[str, str, str]]:
    t = list_images(images_root, **kw)
    return list(zip(t["image_id"].to_pylist(), t["uri"].to_pylist(), fingerprints(t), strict=True))


def test_local_listing_matches_the_fsspec_listing(tmp_path):
    root = tmp_path / "images"
    for d, names in {"train_0": ["b", "a", "dup"], "train_1": ["c", "dup"], "x/y": ["d"]}.items():
        (root / d).mkdir(parents=True)
        for n in names:
            (root / d / f"{n}.jpg").write_bytes(n.encode() * 3)
    (root / "train_0" / "notes.txt").write_text("not an image")
    (root / "train_0" / "upper.JPEG").write_bytes(b"x")
    rows = _rows(str(root))
    assert rows == _fsspec_index(str(root))
    assert [r[0] for r in rows] == ["a", "b", "dup", "upper", "c", "d"]
    assert rows[2][1].endswith("train_0/dup.jpg")  # the first of two shard folders, in sorted order
    before = listing_digest(list_images(str(root)))
    os.utime(root / "train_1" / "c.jpg", ns=(0, 10**9))
    assert listing_digest(list_images(str(root))) != before  # a touched image changes the snapshot


def test_s3_listing_is_paginated_and_matches(bucket):
    fs, b = filesystem(bucket)
    for i in range(230):
        fs.pipe_file(f"{b}/images/train_{i % 3}/{i:016x}.jpg", b"j" * (i % 7 + 1))
    fs.pipe_file(f"{b}/images/readme.txt", b"x")
    rows = _rows(f"{bucket}/images", page_size=100)  # three pages
    assert len(rows) == 230 and rows == _fsspec_index(f"{bucket}/images")
    assert all(r[1].startswith(f"{bucket}/images/train_") for r in rows)
