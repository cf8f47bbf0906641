"""Annotation rows -> kept boxes, with a reason for every row that is not kept; columnar.

Three kinds of "not kept", counted separately:
- quarantined: the row is bad input (NaN or unparseable coordinate, box outside [0,1], min > max,
  unknown label, no ImageID). Kept in a quarantine table with file, line and reason.
- dropped: the row is fine but the filter does not want it (area outside [min_area, max_area],
  the optional group-of / depiction / label filters, a duplicate of an earlier box). Counted by reason.
- absent: a kept box whose image is not under the images root (not downloaded). Not bad input: counted
  per image (`absent` table: image_id, boxes) so a downloader can fetch them; with `require_images`
  each such row is quarantined as `missing_image` instead.

Each check is one vectorised step over a record batch of the Arrow table (numpy on the float64
coordinates, the dictionary indices of ImageID and LabelName), applied in order; a row is charged
to the first step that rejects it. Only the kept rows of present images become Python-level data
(they are the samples to build); everything per annotation row stays in numpy arrays.

Two stages, so that the first can be stored (data/triage_cache.py) and reused while only the images
change: `scan_file` triages a file without the images root (quarantine, drop counts, every kept row
grouped by image, each flagged first-or-repeat of its 64-bit box key within the file), and
`split_by_presence` splits that by the images present. `triage_file` runs both in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from doodleflow.data.config import BoxFilterConfig
from doodleflow.data.openimages import COORDS, BboxTable, _parse_coords

QUARANTINE_COLUMNS = ["file", "line", "image_id", "label", "sample_id", "reason", "detail"]
QUARANTINE_REASONS = (
    "missing_image_id",
    "box_nan",
    "box_unparseable",
    "box_out_of_range",
    "box_inverted",
    "unknown_label",
)
KEPT_COLUMNS = ["image_id", "label", "xmin", "ymin", "xmax", "ymax", "split", "box_key", "_file", "_line"]
ABSENT_SCHEMA = pa.schema([pa.field("image_id", pa.string()), pa.field("boxes", pa.int64())])
# Every kept row of a file, grouped by image (data/triage_cache.py stores it as kept.parquet).
KEPT_SCHEMA = pa.schema(
    [("image_id", pa.string()), ("label", pa.string())]
    + [(c, pa.float64()) for c in ("xmin", "ymin", "xmax", "ymax")]  # the values sample ids hash
    + [("line", pa.int64()), ("first", pa.bool_())]
)
IMAGES_SCHEMA = pa.schema(  # where an image's rows start, how many; first of their box key, repeats
    [("image_id", pa.string()), *((c, pa.int64()) for c in ("start", "rows", "boxes", "dups"))]
)
ROW_GROUP = 8192  # kept rows per slice written: reading one present image costs about one slice
_DETAIL = {"missing_image_id": "ImageID", "unknown_label": "LabelName"}


@dataclass
class BoxTriage:
    kept: pd.DataFrame  # kept boxes of present images: the samples to be
    quarantine: pd.DataFrame
    dropped: dict[str, int]
    absent: pa.Table = field(default_factory=ABSENT_SCHEMA.empty_table)  # image_id, boxes
    missing: pd.DataFrame | None = None  # require_images: one quarantine row per absent box


@dataclass
class _Dicts:
    """Per dictionary entry (not per row): stripped id, its canonical code, presence, label flags."""

    ids: pa.Array  # stripped ImageIDs, unique, indexed by canonical code
    canon: np.ndarray  # dictionary index -> canonical code
    empty: np.ndarray
    labels: pa.Array  # the LabelName dictionary
    known: np.ndarray  # label dictionary index -> in the class list
    allowed: np.ndarray
    denied: np.ndarray


def _dicts(t: pa.Table, classes: dict[str, str], cfg: BoxFilterConfig) -> _Dicts:
    id_dict = t["ImageID"].chunks[0].dictionary if t["ImageID"].num_chunks else pa.array([], pa.string())
    lab_dict = t["LabelName"].chunks[0].dictionary if t["LabelName"].num_chunks else pa.array([], pa.string())
    stripped = pc.utf8_trim_whitespace(id_dict)
    if stripped.equals(id_dict):  # no id with spaces around it: the (unified) dictionary is unique
        ids, canon = id_dict, np.arange(len(id_dict), dtype=np.int64)
    else:  # " abc" and "abc" are one image: two hash passes over 1.7M ids, only when needed
        ids = pc.unique(stripped)
        canon = pc.index_in(stripped, value_set=ids).to_numpy(zero_copy_only=False).astype(np.int64)

    def flags(values) -> np.ndarray:
        return pc.is_in(lab_dict, value_set=pa.array(list(values), pa.string())).to_numpy(
            zero_copy_only=False
        )

    return _Dicts(
        ids=ids,
        canon=canon,
        empty=pc.equal(stripped, "").to_numpy(zero_copy_only=False),
        labels=lab_dict.cast(pa.string()),
        known=flags(classes),
        allowed=flags(cfg.allow_labels) if cfg.allow_labels else np.ones(len(lab_dict), bool),
        denied=flags(cfg.deny_labels),
    )


def _drop_reasons(cfg: BoxFilterConfig) -> list[str]:
    out = ["area_too_small", "area_too_large"]
    out += ["group_of"] if cfg.drop_group_of else []
    out += ["depiction"] if cfg.drop_depiction else []
    out += ["label_not_allowed"] if cfg.allow_labels else []
    out += ["label_denied"] if cfg.deny_labels else []
    return out


def _flag(col: pa.ChunkedArray | pa.Array | None, n: int) -> np.ndarray:
    if col is None:
        return np.zeros(n, bool)
    return pc.fill_null(pc.equal(pc.cast(col, pa.string()), "1"), False).to_numpy(zero_copy_only=False)


def _reasons(b: pa.RecordBatch, d: _Dicts, cfg: BoxFilterConfig, slow: bool) -> np.ndarray:
    """Per row: 0 = kept, 1..6 = quarantine reason, 7.. = drop reason (order of `_drop_reasons`)."""
    n = b.num_rows
    code = b["ImageID"].indices.to_numpy(zero_copy_only=False)
    lab = b["LabelName"].indices.to_numpy(zero_copy_only=False)
    x0, y0, x1, y1 = (b[c].to_numpy(zero_copy_only=False) for c in COORDS)
    r = np.zeros(n, np.int8)

    def charge(k: int, mask: np.ndarray) -> None:
        r[(r == 0) & mask] = k

    nulls = np.zeros(n, bool)
    for c in COORDS:
        nulls |= b[c].is_null().to_numpy(zero_copy_only=False)
    nans = np.isnan(x0) | np.isnan(x1) | np.isnan(y0) | np.isnan(y1)
    charge(1, d.empty[code])
    charge(2, nulls if slow else nans)  # typed read: null and NaN both come from NaN-like text
    charge(3, nans)
    with np.errstate(invalid="ignore"):
        charge(4, (x0 < 0) | (x0 > 1) | (x1 < 0) | (x1 > 1) | (y0 < 0) | (y0 > 1) | (y1 < 0) | (y1 > 1))
        charge(5, (x0 > x1) | (y0 > y1))
        charge(6, ~d.known[lab])
        area = (x1 - x0) * (y1 - y0)
        checks = [area < cfg.min_area, area > cfg.max_area]
    checks += [_flag(b.column("IsGroupOf"), n)] if cfg.drop_group_of else []
    checks += [_flag(b.column("IsDepiction"), n)] if cfg.drop_depiction else []
    checks += [~d.allowed[lab]] if cfg.allow_labels else []
    checks += [d.denied[lab]] if cfg.deny_labels else []
    for k, mask in enumerate(checks, start=7):
        charge(k, mask)
    return r


def _fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (uint64, wraps)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _box_hash(canon: np.ndarray, b: pa.RecordBatch, rows: np.ndarray) -> np.ndarray:
    """A 64-bit key of (image, label, coordinates at 6 decimals) for the duplicate check within a
    file, without a string per row; it decides absent images' box counts (present images' rows
    are checked again across files with the exact `box_keys`)."""
    h = _fmix(canon.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    lab = b["LabelName"].indices.to_numpy(zero_copy_only=False)[rows].astype(np.uint64)
    parts = [lab] + [
        np.rint(b[c].to_numpy(zero_copy_only=False)[rows] * 1e6).astype(np.uint64) for c in COORDS
    ]
    for v in parts:
        h = _fmix(h ^ (v * np.uint64(0x9E3779B97F4A7C15)))
    return h


@dataclass
class _Kept:
    """Per kept row: its row in the table, its image's canonical code, and whether it is the first
    row of its 64-bit box key in the file (image, label, coordinates at 6 decimals)."""

    rows: np.ndarray  # int64
    canon: np.ndarray  # int32
    first: np.ndarray  # bool


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _scan(bt: BboxTable, d: _Dicts, cfg: BoxFilterConfig) -> tuple[np.ndarray, _Kept]:
    """Reasons per row, and every kept row in file order. The duplicate check is a hash table over
    the 64-bit keys (pandas), not a sort: O(rows), `keep='first'` is the file order."""
    reasons, rows, canon, hashes, offset = [], [], [], [], 0
    for b in bt.table.to_batches():
        r = _reasons(b, d, cfg, bt.text is not None)
        keep = np.flatnonzero(r == 0)
        code = d.canon[b["ImageID"].indices.to_numpy(zero_copy_only=False)[keep]]
        reasons.append(r)
        rows.append(keep + offset)
        canon.append(code.astype(np.int32))
        hashes.append(_box_hash(code, b, keep))
        offset += b.num_rows
    h = _cat(hashes, np.uint64)
    hashes.clear()
    first = ~pd.Series(h, copy=False).duplicated(keep="first").to_numpy()
    del h
    return _cat(reasons, np.int8), _Kept(_cat(rows, np.int64), _cat(canon, np.int32), first)


def _images(ids: pa.Array, kept: _Kept) -> pa.Table:
    """One row per image of the (image-grouped) kept rows: where its rows start, how many, how many
    are first of their box key (`boxes`) and how many repeat one (`dups`)."""
    n = len(kept.canon)
    if not n:
        return IMAGES_SCHEMA.empty_table()
    starts = np.flatnonzero(np.r_[True, kept.canon[1:] != kept.canon[:-1]])
    rows = np.diff(np.r_[starts, n])
    boxes = np.add.reduceat(kept.first.astype(np.int64), starts)
    cols = [
        ids.take(pa.array(kept.canon[starts])),
        *(pa.array(v) for v in (starts, rows, boxes, rows - boxes)),
    ]
    return pa.table(cols, schema=IMAGES_SCHEMA)


RowReader = Callable[[np.ndarray, list[str]], pa.Table]  # images mask, columns -> their kept rows


@dataclass
class TriagedFile:
    """One annotation file triaged without looking at the images root: what data/triage_cache.py
    stores. Kept rows are grouped by image; `read` returns those of the images a mask selects."""

    file: str
    split: str
    quarantine: pd.DataFrame
    dropped: dict[str, int]  # by reason; duplicates are counted once presence is known
    images: pa.Table  # IMAGES_SCHEMA, in the order of the kept rows
    read: RowReader


@dataclass
class FileScan:
    """The triage of one read annotation table; `kept_tables` streams its kept rows (KEPT_SCHEMA)."""

    bt: BboxTable
    d: _Dicts
    kept: _Kept  # grouped by image, file order within an image
    grouped: bool  # the file was grouped by image already (OpenImages files are sorted by ImageID)
    quarantine: pd.DataFrame
    dropped: dict[str, int]
    images: pa.Table

    def kept_tables(self) -> Iterator[pa.Table]:
        """The kept rows in image order, in slices of at most ROW_GROUP rows (bounded memory)."""
        yield from (_kept_by_batch if self.grouped else _kept_gathered)(self)

    def in_memory(self) -> TriagedFile:
        kept = pa.concat_tables([KEPT_SCHEMA.empty_table(), *self.kept_tables()])
        rows = self.images["rows"].to_numpy(zero_copy_only=False)

        def read(mask: np.ndarray, columns: list[str]) -> pa.Table:
            return kept.filter(pa.array(np.repeat(mask, rows))).select(columns)

        return TriagedFile(self.bt.file, self.bt.split, self.quarantine, self.dropped, self.images, read)


def scan_file(bt: BboxTable, classes: dict[str, str], cfg: BoxFilterConfig) -> FileScan:
    """One annotation table -> quarantine rows, drop counts and every kept row, grouped by image.
    Presence plays no part: the result can be stored and reused while only the images change."""
    d = _dicts(bt.table, classes, cfg)
    reasons, kept = _scan(bt, d, cfg)
    drops = _drop_reasons(cfg)
    counts = np.bincount(reasons, minlength=7 + len(drops))
    dropped = {r: int(counts[7 + i]) for i, r in enumerate(drops) if counts[7 + i]}
    grouped = bool(np.all(kept.canon[1:] >= kept.canon[:-1]))
    if not grouped:  # a stable sort keeps the file order within an image
        order = np.argsort(kept.canon, kind="stable")
        kept = _Kept(kept.rows[order], kept.canon[order], kept.first[order])
    quarantine = _quarantine(bt, reasons)
    return FileScan(bt, d, kept, grouped, quarantine, dropped, _images(d.ids, kept))


def _kept_table(s: FileScan, i: int, j: int, labels: np.ndarray, coords: list[np.ndarray]) -> pa.Table:
    cols = [s.d.ids.take(pa.array(s.kept.canon[i:j])), s.d.labels.take(pa.array(labels))]
    cols += [pa.array(c) for c in coords]
    cols += [pa.array(s.kept.rows[i:j] + 2), pa.array(s.kept.first[i:j])]  # line: header = 1
    return pa.table(cols, schema=KEPT_SCHEMA)


def _kept_by_batch(s: FileScan) -> Iterator[pa.Table]:
    """Grouped file: the kept rows are in file order, so each record batch gives its own, in slices."""
    offset = i = 0
    for b in s.bt.table.to_batches():
        j = int(np.searchsorted(s.kept.rows, offset + b.num_rows))
        for a in range(i, j, ROW_GROUP):
            e = min(a + ROW_GROUP, j)
            local = s.kept.rows[a:e] - offset
            labels = b["LabelName"].indices.to_numpy(zero_copy_only=False)[local]
            coords = [b[c].to_numpy(zero_copy_only=False)[local] for c in COORDS]
            yield _kept_table(s, a, e, labels, coords)
        offset, i = offset + b.num_rows, j


def _kept_gathered(s: FileScan) -> Iterator[pa.Table]:
    """Ungrouped file: gather each slice from whole columns (one numpy copy of the coordinates)."""
    t = s.bt.table
    labels = _cat([c.indices.to_numpy(zero_copy_only=False) for c in t["LabelName"].chunks], np.int32)
    coords = [t[c].to_numpy() for c in COORDS]
    for a in range(0, len(s.kept.rows), ROW_GROUP):
        rows = s.kept.rows[a : a + ROW_GROUP]
        yield _kept_table(s, a, a + len(rows), labels[rows], [c[rows] for c in coords])


def _rows_frame(bt: BboxTable, rows: np.ndarray) -> pd.DataFrame:
    """The given rows as a frame: raw ImageID/LabelName, coordinates and their text, file, line."""
    t = bt.table.take(pa.array(rows, pa.int64()))
    df = pd.DataFrame(
        {
            "ImageID": t["ImageID"].cast(pa.string()).to_numpy(zero_copy_only=False),
            "LabelName": t["LabelName"].cast(pa.string()).to_numpy(zero_copy_only=False),
            **{c.lower(): t[c].to_numpy(zero_copy_only=False) for c in COORDS},
        }
    )
    if bt.text is not None:
        raw = bt.text.take(pa.array(rows, pa.int64()))
        for c in COORDS:
            df[c] = raw[c].to_numpy(zero_copy_only=False)
    else:
        for c in COORDS:
            df[c] = [("" if np.isnan(v) else repr(float(v))) for v in df[c.lower()]]
    df["_file"], df["_line"], df["split"] = bt.file, rows + 2, bt.split
    return df


def _detail(df: pd.DataFrame, reason: str) -> pd.Series:
    what = _DETAIL.get(reason)
    if what is None:
        return "XMin=" + df["XMin"] + " YMin=" + df["YMin"] + " XMax=" + df["XMax"] + " YMax=" + df["YMax"]
    return what + "=" + df[what].astype(str)


def _quarantine(bt: BboxTable, reasons: np.ndarray) -> pd.DataFrame:
    rows = np.flatnonzero((reasons >= 1) & (reasons <= len(QUARANTINE_REASONS)))
    if not len(rows):
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    df = _rows_frame(bt, rows)
    df["reason"] = [QUARANTINE_REASONS[k - 1] for k in reasons[rows]]
    df["detail"] = ""
    for reason in df["reason"].unique():
        sel = df["reason"] == reason
        df.loc[sel, "detail"] = _detail(df[sel], reason)
    return pd.DataFrame(
        {
            "file": df["_file"],
            "line": df["_line"],
            "image_id": df["ImageID"],
            "label": df["LabelName"],
            "sample_id": "",
            "reason": df["reason"],
            "detail": df["detail"],
        }
    )


@dataclass
class _FileTriage:
    quarantine: pd.DataFrame
    dropped: Counter
    present: pd.DataFrame  # kept rows of present images, before the duplicate check
    absent: pa.Table  # image_id, boxes (deduplicated within the file)
    missing: pd.DataFrame | None


def split_by_presence(f: TriagedFile, present: pa.Array | None, require_images: bool) -> _FileTriage:
    """A triaged file against the images root: the kept rows of present images (file order), absent
    images with their boxes (first of their key in the file), and with `require_images` one
    `missing_image` row per such box. Only the rows of present images are read (unless required)."""
    here = (
        np.ones(f.images.num_rows, bool)
        if present is None
        else pc.is_in(f.images["image_id"], value_set=present).to_numpy(zero_copy_only=False)
    )
    gone = f.images.filter(pa.array(~here))
    dropped = Counter(f.dropped)
    dups = int(pc.sum(gone["dups"]).as_py() or 0)
    if dups:
        dropped["duplicate_box"] += dups
    kept = _kept_frame(_frame(_file_order(f.read(here, list(_FRAME_COLUMNS))), f.file, f.split))
    missing = None
    if require_images:
        rows = f.read(~here, [*_FRAME_COLUMNS, "first"])
        missing = _missing(_frame(_file_order(rows.filter(rows["first"])), f.file, f.split))
    return _FileTriage(f.quarantine, dropped, kept, gone.select(["image_id", "boxes"]), missing)


def triage_file(
    bt: BboxTable,
    classes: dict[str, str],
    cfg: BoxFilterConfig,
    present: pa.Array | None = None,
    require_images: bool = False,
) -> _FileTriage:
    """One annotation table against the images present (None: all), in memory."""
    return split_by_presence(scan_file(bt, classes, cfg).in_memory(), present, require_images)


_FRAME_COLUMNS = ("image_id", "label", "xmin", "ymin", "xmax", "ymax", "line")


def _file_order(t: pa.Table) -> pa.Table:
    """Rows of one file back in file order (the duplicate check keeps the first row in that order)."""
    line = t["line"].to_numpy()
    return t if np.all(line[1:] >= line[:-1]) else t.take(np.argsort(line, kind="stable"))


def _frame(t: pa.Table, file: str, split: str) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "ImageID": t["image_id"].to_numpy(zero_copy_only=False),
            "LabelName": t["label"].to_numpy(zero_copy_only=False),
            **{c: t[c].to_numpy(zero_copy_only=False) for c in ("xmin", "ymin", "xmax", "ymax")},
        }
    )
    df["_file"], df["_line"], df["split"] = file, t["line"].to_numpy(), split
    return df


def _kept_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={"ImageID": "image_id", "LabelName": "label"}).assign(
        image_id=lambda f: f["image_id"].str.strip()
    )


def _missing(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "file": df["_file"],
            "line": df["_line"],
            "image_id": df["ImageID"].str.strip(),
            "label": df["LabelName"],
            "sample_id": "",
            "reason": "missing_image",
            "detail": "",
        }
    )


def box_keys(df: pd.DataFrame) -> pd.Series:
    """A stable id of a box: its image, label and parsed coordinates (robust to number formatting).

    Part of every sample id, so it must not change: versions written earlier carry over by it."""
    parts = df[["image_id", "label"]].copy()
    for c in ("xmin", "ymin", "xmax", "ymax"):
        parts[c] = df[c].map(lambda v: f"{v:.6f}")
    h = pd.util.hash_pandas_object(parts, index=False).to_numpy(dtype=np.uint64)
    return pd.Series([f"{v:016x}" for v in h], index=df.index)


def combine(files: list[_FileTriage]) -> BoxTriage:
    """All files' triage: the duplicate check over the kept rows of present images (exact box keys),
    absent counts summed per image."""
    kept = pd.concat([f.present for f in files], ignore_index=True) if files else pd.DataFrame()
    dropped = sum((f.dropped for f in files), Counter())
    if len(kept):
        kept["box_key"] = box_keys(kept)
        dup = kept.duplicated(["image_id", "box_key"]).to_numpy()
        if dup.any():
            dropped["duplicate_box"] += int(dup.sum())
            kept = kept[~dup]
    else:
        kept = pd.DataFrame(columns=KEPT_COLUMNS)
    absent = pa.concat_tables([f.absent for f in files]) if files else ABSENT_SCHEMA.empty_table()
    if len(files) > 1:  # the same image in two files (rare): one row
        absent = absent.group_by("image_id", use_threads=False).aggregate([("boxes", "sum")])
        absent = absent.rename_columns(["image_id", "boxes"])
    absent = absent.cast(ABSENT_SCHEMA).sort_by("image_id")
    qs = [f.quarantine for f in files if len(f.quarantine)]
    quarantine = pd.concat(qs, ignore_index=True) if qs else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    ms = [f.missing for f in files if f.missing is not None]
    missing = pd.concat(ms, ignore_index=True) if ms else None
    return BoxTriage(
        kept=kept[KEPT_COLUMNS].reset_index(drop=True),
        quarantine=quarantine,
        dropped={k: v for k, v in sorted(dropped.items()) if v},
        absent=absent,
        missing=missing,
    )


def triage_boxes(rows: pd.DataFrame, classes: dict[str, str], cfg: BoxFilterConfig) -> BoxTriage:
    """A small frame of string rows (`read_bbox_csv`), every image present: the same triage."""
    cols = {
        "ImageID": pa.array(rows["ImageID"].astype(str)).dictionary_encode(),
        "LabelName": pa.array(rows["LabelName"].astype(str)).dictionary_encode(),
        **{c: _parse_coords(pa.array(rows[c].astype(str))) for c in COORDS},
    }
    for c in ("IsGroupOf", "IsDepiction"):
        if c in rows:
            cols[c] = pa.array(rows[c].astype(str)).dictionary_encode()
    text = pa.table({c: pa.array(rows[c].astype(str)) for c in COORDS})
    file = str(rows["_file"].iloc[0]) if len(rows) else ""
    split = str(rows["split"].iloc[0]) if len(rows) else ""
    return combine([triage_file(BboxTable(pa.table(cols), file, split, text), classes, cfg)])
