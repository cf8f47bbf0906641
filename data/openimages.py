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
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from doodleflow.data.errors import InputError
from doodleflow.data.fsutil import filesystem, is_local, join

if TYPE_CHECKING:  # pandas loads only where a frame is made: the unchanged-rerun check needs none
    import pandas as pd

REQUIRED_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
OPTIONAL_COLUMNS = ("IsGroupOf", "IsDepiction")
COORDS = ("XMin", "YMin", "XMax", "YMax")
CLASS_FILE = "class-descriptions-boxable.csv"
BBOX_SUFFIX = "-annotations-bbox.csv"
# Coordinate texts that mean "no value" (quarantined as box_nan); Arrow reads them as null.
NAN_TEXTS = [v for t in ("", "nan", "na", "null", "none") for v in {t, t.upper(), t.capitalize()}]


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
        text = fs.cat_file(path).decode("utf-8-sig")
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


def _header(uri: str, head: bytes) -> list[str]:
    """The header row; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is not part of the first name."""
    if not head.strip():
        raise InputError(f"{uri}: empty file (expected a header row with {', '.join(REQUIRED_COLUMNS)})")
    try:
        line = head.decode("utf-8-sig", errors="strict").split("\n")[0]
        return [h.strip() for h in next(csv.reader(io.StringIO(line)))]
    except (UnicodeDecodeError, StopIteration) as e:
        raise InputError(f"{uri}: unreadable CSV ({type(e).__name__}: {e})") from e


def _check_columns(uri: str, header: list[str], need: tuple[str, ...]) -> list[str]:
    for col in (*REQUIRED_COLUMNS, *need):
        if col not in header:
            raise InputError(f"{uri}: required column {col!r} missing (header: {','.join(header)})")
    return [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in header]


@dataclass
class BboxTable:
    """One annotation CSV, columnar: ImageID and LabelName dictionary-encoded (one dictionary per
    column for the whole file), coordinates float64 (null = a NaN-like text). When some coordinate
    is not a number at all, `text` holds the four coordinate columns as read (strings) and the
    float columns hold NaN (not null) where the text did not parse."""

    table: pa.Table
    file: str  # base name, as quarantine rows name it
    split: str
    text: pa.Table | None = None


def _open(uri: str):
    fs, path = filesystem(uri)
    return (path, fs.size(path)) if is_local(fs) else (fs.open(path, "rb", block_size=8 << 20), fs.size(path))


def _read(uri: str, cols: list[str], types: dict) -> pa.Table:
    src, _ = _open(uri)
    opts = pacsv.ConvertOptions(
        include_columns=cols, column_types=types, null_values=NAN_TEXTS, strings_can_be_null=False
    )
    try:
        return pacsv.read_csv(src, read_options=pacsv.ReadOptions(block_size=8 << 20), convert_options=opts)
    finally:
        if not isinstance(src, str):
            src.close()


def read_bbox_table(uri: str, need: tuple[str, ...] = ()) -> BboxTable:
    """Read only the needed columns of a bbox CSV, typed, with Arrow's multi-threaded reader."""
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        head = f.read(65536)
    cols = _check_columns(uri, _header(uri, head), need)
    ids = pa.dictionary(pa.int32(), pa.string())
    types = {c: ids for c in cols if c not in COORDS} | dict.fromkeys(COORDS, pa.float64())
    name, split = os.path.basename(path), split_of(uri)
    try:
        table = _read(uri, cols, types)
    except pa.ArrowInvalid as e:
        if "conversion error" not in str(e):
            raise InputError(f"{uri}: unreadable CSV ({e})") from e
        # Some coordinate is not a number: read them as text and parse them chunk by chunk.
        table = _read(uri, cols, types | dict.fromkeys(COORDS, pa.string()))
        text = table.select(list(COORDS))
        parsed = {
            c: pa.chunked_array([_parse_coords(ch) for ch in table[c].chunks], pa.float64()) for c in COORDS
        }
        table = table.drop_columns(list(COORDS))
        for c in COORDS:
            table = table.append_column(c, parsed[c])
        return BboxTable(table.unify_dictionaries(), name, split, text)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{uri}: unreadable CSV ({e})") from e
    return BboxTable(table.unify_dictionaries(), name, split)


def _parse_coords(text: pa.Array) -> pa.Array:
    """Text -> float64: NaN-like text -> null, other text that is not a number -> NaN (not null)."""
    low = pc.utf8_lower(pc.utf8_trim_whitespace(text))
    nan_text = pc.is_in(low, value_set=pa.array(["", "nan", "na", "null", "none"]))
    masked = pc.if_else(nan_text, pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(masked, pa.float64())
    except pa.ArrowInvalid:  # rare: only chunks with a bad value pay for pandas' lenient parser
        import pandas as pd

        values = pd.to_numeric(pd.Series(masked.to_pandas()), errors="coerce").to_numpy(np.float64)
        return pa.array(values, pa.float64(), mask=nan_text.to_numpy(zero_copy_only=False))


def read_bbox_csv(uri: str, need: tuple[str, ...] = ()) -> pd.DataFrame:
    """A small CSV as a pandas frame of strings, plus `_file`, `_line` (header = line 1) and `split`.

    For inspection and tests; planning reads `read_bbox_table` (columnar, typed)."""
    import pandas as pd

    fs, path = filesystem(uri)
    raw = fs.cat_file(path)
    cols = _check_columns(uri, _header(uri, raw[:65536]), need)
    try:
        df = pd.read_csv(
            io.BytesIO(raw), usecols=cols, dtype=str, keep_default_na=False, engine="c", encoding="utf-8-sig"
        )
    except (ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{uri}: unreadable CSV ({e})") from e
    df["_file"] = os.path.basename(path)
    df["_line"] = np.arange(2, len(df) + 2)
    df["split"] = split_of(uri)
    return df
