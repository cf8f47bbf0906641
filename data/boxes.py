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
"""

from __future__ import annotations

from collections import Counter
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
    present: np.ndarray
    known: np.ndarray  # label dictionary index -> in the class list
    allowed: np.ndarray
    denied: np.ndarray


def _dicts(t: pa.Table, classes: dict[str, str], cfg: BoxFilterConfig, present: pa.Array | None) -> _Dicts:
    id_dict = t["ImageID"].chunks[0].dictionary if t["ImageID"].num_chunks else pa.array([], pa.string())
    lab_dict = t["LabelName"].chunks[0].dictionary if t["LabelName"].num_chunks else pa.array([], pa.string())
    stripped = pc.utf8_trim_whitespace(id_dict)
    ids = pc.unique(stripped)
    canon = pc.index_in(stripped, value_set=ids).to_numpy(zero_copy_only=False).astype(np.int64)
    present_ids = (
        np.ones(len(ids), bool)
        if present is None
        else pc.is_in(ids, value_set=present).to_numpy(zero_copy_only=False)
    )

    def flags(values) -> np.ndarray:
        return pc.is_in(lab_dict, value_set=pa.array(list(values), pa.string())).to_numpy(
            zero_copy_only=False
        )

    return _Dicts(
        ids=ids,
        canon=canon,
        empty=pc.equal(stripped, "").to_numpy(zero_copy_only=False),
        present=present_ids,
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
    """A 64-bit key of (image, label, coordinates at 6 decimals) for the duplicate check of absent
    images' boxes, without a string per row (present images use the exact `box_keys`)."""
    h = _fmix(canon.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    lab = b["LabelName"].indices.to_numpy(zero_copy_only=False)[rows].astype(np.uint64)
    parts = [lab] + [
        np.rint(b[c].to_numpy(zero_copy_only=False)[rows] * 1e6).astype(np.uint64) for c in COORDS
    ]
    for v in parts:
        h = _fmix(h ^ (v * np.uint64(0x9E3779B97F4A7C15)))
    return h


@dataclass
class _FileRows:
    reasons: list[np.ndarray] = field(default_factory=list)
    present: list[np.ndarray] = field(default_factory=list)  # row indices of kept rows, present images
    absent_rows: list[np.ndarray] = field(default_factory=list)  # only with require_images
    absent_code: list[np.ndarray] = field(default_factory=list)  # canonical image code (int32)
    absent_hash: list[np.ndarray] = field(default_factory=list)


def _scan(bt: BboxTable, d: _Dicts, cfg: BoxFilterConfig, keep_rows: bool) -> _FileRows:
    out, offset = _FileRows(), 0
    for b in bt.table.to_batches():
        r = _reasons(b, d, cfg, bt.text is not None)
        keep = np.flatnonzero(r == 0)
        canon = d.canon[b["ImageID"].indices.to_numpy(zero_copy_only=False)[keep]]
        here = d.present[canon]
        out.reasons.append(r)
        out.present.append(keep[here] + offset)
        gone = keep[~here]
        if keep_rows:
            out.absent_rows.append(gone + offset)
        out.absent_code.append(canon[~here].astype(np.int32))
        out.absent_hash.append(_box_hash(canon[~here], b, gone))
        offset += b.num_rows
    return out


def _first_boxes(rows: _FileRows) -> tuple[np.ndarray, np.ndarray, int]:
    """Absent images' boxes without duplicates: (codes, row indices or empty, duplicates). A hash
    table (pandas), not a sort: O(rows), and `keep='first'` is the file order, as for present ones."""
    code = np.concatenate(rows.absent_code) if rows.absent_code else np.zeros(0, np.int32)
    rows.absent_code.clear()
    h = np.concatenate(rows.absent_hash) if rows.absent_hash else np.zeros(0, np.uint64)
    rows.absent_hash.clear()
    first = ~pd.Series(h, copy=False).duplicated(keep="first").to_numpy()
    del h
    dups = int(len(first) - first.sum())
    lines = np.concatenate(rows.absent_rows)[first] if rows.absent_rows else np.zeros(0, np.int64)
    return code[first], lines, dups


def _rows_frame(bt: BboxTable, rows: np.ndarray, text: bool = True) -> pd.DataFrame:
    """The given rows as a frame: raw ImageID/LabelName, coordinates (and their text), file, line."""
    t = bt.table.take(pa.array(rows, pa.int64()))
    df = pd.DataFrame(
        {
            "ImageID": t["ImageID"].cast(pa.string()).to_numpy(zero_copy_only=False),
            "LabelName": t["LabelName"].cast(pa.string()).to_numpy(zero_copy_only=False),
            **{c.lower(): t[c].to_numpy(zero_copy_only=False) for c in COORDS},
        }
    )
    if not text:
        pass
    elif bt.text is not None:
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


def triage_file(
    bt: BboxTable,
    classes: dict[str, str],
    cfg: BoxFilterConfig,
    present: pa.Array | None = None,
    require_images: bool = False,
) -> _FileTriage:
    """One annotation table -> quarantine rows, drop counts, present kept rows, absent counts."""
    d = _dicts(bt.table, classes, cfg, present)
    rows = _scan(bt, d, cfg, require_images)
    reasons = np.concatenate(rows.reasons) if rows.reasons else np.zeros(0, np.int8)
    drops = _drop_reasons(cfg)
    counts = np.bincount(reasons, minlength=7 + len(drops))
    dropped = Counter({r: int(counts[7 + i]) for i, r in enumerate(drops) if counts[7 + i]})
    code, absent_rows, dups = _first_boxes(rows)
    if dups:
        dropped["duplicate_box"] += dups
    per_image = np.bincount(code, minlength=len(d.ids))
    hit = np.flatnonzero(per_image)
    absent = pa.table({"image_id": d.ids.take(pa.array(hit)), "boxes": pa.array(per_image[hit], pa.int64())})
    missing = _missing(bt, absent_rows) if require_images else None
    present_rows = np.concatenate(rows.present) if rows.present else np.zeros(0, np.int64)
    return _FileTriage(_quarantine(bt, reasons), dropped, _kept_frame(bt, present_rows), absent, missing)


def _kept_frame(bt: BboxTable, rows: np.ndarray) -> pd.DataFrame:
    df = _rows_frame(bt, rows, text=False)
    return df.rename(columns={"ImageID": "image_id", "LabelName": "label"}).assign(
        image_id=lambda f: f["image_id"].str.strip()
    )


def _missing(bt: BboxTable, rows: np.ndarray) -> pd.DataFrame:
    df = _rows_frame(bt, rows, text=False)
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
