"""Reading the real OpenImages layout: class list, bbox CSVs and the images root.

Structural problems raise `InputError` naming the file and column before any work starts.
Per-row problems are returned as quarantine rows (file, line, image id, reason, detail).
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from dataclasses import dataclass

import numpy as np
import pandas as pd
from doodleflow.data.errors import InputError
from doodleflow.data.fsutil import filesystem, join

REQUIRED_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
OPTIONAL_COLUMNS = ("IsGroupOf", "IsDepiction")
COORDS = ("XMin", "YMin", "XMax", "YMax")
CLASS_FILE = "class-descriptions-boxable.csv"
BBOX_SUFFIX = "-annotations-bbox.csv"


@dataclass(frozen=True)
class SourceLayout:
    """Where one OpenImages-format source keeps its parts (URIs: local paths or s3://)."""

    class_descriptions: str
    bbox_csvs: tuple[str, ...]
    images_root: str


def _uri(fs, path: str, like: str) -> str:
    return f"s3://{path}" if like.startswith("s3://") else path


def locate_source(source: str, images: str | None = None) -> SourceLayout:
    """Find the CSVs (in `source` or `source/annotations`) and the images root (`source/images`)."""
    fs, root = filesystem(source)
    if not fs.isdir(root):
        raise InputError(f"source {source}: not a directory")
    csvs: list[str] = []
    class_file = None
    for d in (root, join(root, "annotations")):
        if not fs.isdir(d):
            continue
        for p in sorted(fs.ls(d, detail=False)):
            name = posixpath.basename(p)
            if name == CLASS_FILE:
                class_file = class_file or p
            elif name.endswith(BBOX_SUFFIX):
                csvs.append(p)
    if class_file is None:
        raise InputError(f"source {source}: no {CLASS_FILE} (looked in . and annotations/)")
    if not csvs:
        raise InputError(f"source {source}: no *{BBOX_SUFFIX} file (looked in . and annotations/)")
    images_uri = images or _uri(fs, join(root, "images"), source)
    ifs, iroot = filesystem(images_uri)
    if not ifs.isdir(iroot):
        raise InputError(f"images root {images_uri}: not a directory (pass --images to point elsewhere)")
    return SourceLayout(
        class_descriptions=_uri(fs, class_file, source),
        bbox_csvs=tuple(_uri(fs, p, source) for p in csvs),
        images_root=images_uri,
    )


def read_class_descriptions(uri: str) -> dict[str, str]:
    """MID -> display name; the official file has no header, some copies have `LabelName,DisplayName`."""
    fs, path = filesystem(uri)
    try:
        text = fs.cat_file(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{uri}: not UTF-8 text ({e})") from e
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["labelname", "displayname"]:
        rows = rows[1:]
    out: dict[str, str] = {}
    for i, r in enumerate(rows, start=1):
        if len(r) < 2:
            raise InputError(f"{uri}: line {i} has {len(r)} column(s), expected LabelName,DisplayName")
        out[r[0].strip()] = r[1].strip()
    if not out:
        raise InputError(f"{uri}: no classes")
    return out


def split_of(csv_uri: str) -> str:
    """'oidv6-train-annotations-bbox.csv' -> 'train', 'validation-annotations-bbox.csv' -> 'validation'."""
    stem = posixpath.basename(csv_uri).split("-annotations-bbox")[0]
    tokens = stem.replace("_", "-").split("-")
    return next((s for s in ("train", "validation", "test") if s in tokens), stem)


def read_bbox_csv(uri: str, need: tuple[str, ...] = ()) -> pd.DataFrame:
    """The needed columns as strings, plus `_file` and `_line` (1-based, header = line 1)."""
    fs, path = filesystem(uri)
    raw = fs.cat_file(path)
    if not raw.strip():
        raise InputError(f"{uri}: empty file (expected a header row with {', '.join(REQUIRED_COLUMNS)})")
    try:
        header = next(csv.reader(io.StringIO(raw[:65536].decode("utf-8", errors="strict").split("\n")[0])))
    except (UnicodeDecodeError, StopIteration) as e:
        raise InputError(f"{uri}: unreadable CSV ({type(e).__name__}: {e})") from e
    header = [h.strip() for h in header]
    for col in (*REQUIRED_COLUMNS, *need):
        if col not in header:
            raise InputError(f"{uri}: required column {col!r} missing (header: {','.join(header)})")
    cols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in header]
    try:
        df = pd.read_csv(io.BytesIO(raw), usecols=cols, dtype=str, keep_default_na=False, engine="c")
    except (ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{uri}: unreadable CSV ({e})") from e
    df["_file"] = os.path.basename(path)
    df["_line"] = np.arange(2, len(df) + 2)
    df["split"] = split_of(uri)
    return df
