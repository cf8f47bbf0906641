"""Annotation rows -> kept boxes, with a reason for every row that is not kept.

Two kinds of "not kept", counted separately:
- quarantined: the row is bad input (NaN or unparseable coordinate, box outside [0,1], min > max,
  unknown label, no ImageID). Kept in a quarantine table with file, line and reason.
- dropped: the row is fine but the filter does not want it (area outside [min_area, max_area],
  and the optional group-of / depiction / label filters). Counted by reason.

Each check is a small vectorised step over the whole table, applied in order; a row is charged to
the first step that rejects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from doodleflow.data.config import BoxFilterConfig

QUARANTINE_COLUMNS = ["file", "line", "image_id", "label", "sample_id", "reason", "detail"]


@dataclass
class BoxTriage:
    kept: pd.DataFrame
    quarantine: pd.DataFrame
    dropped: dict[str, int]


Check = Callable[[pd.DataFrame], "pd.Series[bool]"]


def _parse_coords(df: pd.DataFrame) -> pd.DataFrame:
    for col, out in (("XMin", "xmin"), ("YMin", "ymin"), ("XMax", "xmax"), ("YMax", "ymax")):
        df[out] = pd.to_numeric(df[col], errors="coerce")
    return df


def _is_nan_text(s: pd.Series) -> pd.Series:
    return s.str.strip().str.lower().isin(["", "nan", "na", "null", "none"])


def quarantine_checks(classes: dict[str, str]) -> list[tuple[str, Check, str]]:
    """(reason, rejects-row predicate, detail column) in order; rows must already have parsed coords."""
    coords = ["xmin", "ymin", "xmax", "ymax"]
    raw = ["XMin", "YMin", "XMax", "YMax"]

    def nan(df):
        return pd.concat([_is_nan_text(df[c]) for c in raw], axis=1).any(axis=1)

    def unparseable(df):
        return df[coords].isna().any(axis=1)

    def out_of_range(df):
        v = df[coords].to_numpy()
        return pd.Series(((v < 0) | (v > 1)).any(axis=1), index=df.index)

    def inverted(df):
        return (df["xmin"] > df["xmax"]) | (df["ymin"] > df["ymax"])

    return [
        ("missing_image_id", lambda df: df["ImageID"].str.strip() == "", "ImageID"),
        ("box_nan", nan, "coords"),
        ("box_unparseable", unparseable, "coords"),
        ("box_out_of_range", out_of_range, "coords"),
        ("box_inverted", inverted, "coords"),
        ("unknown_label", lambda df: ~df["LabelName"].isin(classes), "LabelName"),
    ]


def drop_checks(cfg: BoxFilterConfig) -> list[tuple[str, Check]]:
    def area(df):
        return (df["xmax"] - df["xmin"]) * (df["ymax"] - df["ymin"])

    checks: list[tuple[str, Check]] = [
        ("area_too_small", lambda df: area(df) < cfg.min_area),
        ("area_too_large", lambda df: area(df) > cfg.max_area),
    ]
    if cfg.drop_group_of:
        checks.append(("group_of", lambda df: df.get("IsGroupOf", pd.Series("0", df.index)) == "1"))
    if cfg.drop_depiction:
        checks.append(("depiction", lambda df: df.get("IsDepiction", pd.Series("0", df.index)) == "1"))
    if cfg.allow_labels:
        checks.append(("label_not_allowed", lambda df: ~df["label"].isin(cfg.allow_labels)))
    if cfg.deny_labels:
        checks.append(("label_denied", lambda df: df["label"].isin(cfg.deny_labels)))
    checks.append(("duplicate_box", lambda df: df.duplicated(["image_id", "box_key"])))
    return checks


def _detail(df: pd.DataFrame, what: str) -> pd.Series:
    if what == "coords":
        return "XMin=" + df["XMin"] + " YMin=" + df["YMin"] + " XMax=" + df["XMax"] + " YMax=" + df["YMax"]
    return what + "=" + df[what].astype(str)


def box_keys(df: pd.DataFrame) -> pd.Series:
    """A stable id of a box: its image, label and parsed coordinates (robust to number formatting)."""
    parts = df[["image_id", "label"]].copy()
    for c in ("xmin", "ymin", "xmax", "ymax"):
        parts[c] = df[c].map(lambda v: f"{v:.6f}")
    h = pd.util.hash_pandas_object(parts, index=False).to_numpy(dtype=np.uint64)
    return pd.Series([f"{v:016x}" for v in h], index=df.index)


def triage_boxes(rows: pd.DataFrame, classes: dict[str, str], cfg: BoxFilterConfig) -> BoxTriage:
    df = _parse_coords(rows.copy())
    quarantined = []
    for reason, check, detail in quarantine_checks(classes):
        bad = check(df)
        if bad.any():
            q = df[bad]
            quarantined.append(
                pd.DataFrame(
                    {
                        "file": q["_file"],
                        "line": q["_line"],
                        "image_id": q["ImageID"],
                        "label": q["LabelName"],
                        "sample_id": "",
                        "reason": reason,
                        "detail": _detail(q, detail),
                    }
                )
            )
            df = df[~bad]
    df = df.rename(columns={"ImageID": "image_id", "LabelName": "label"})
    df["image_id"] = df["image_id"].str.strip()
    df["box_key"] = box_keys(df) if len(df) else pd.Series(dtype=str)
    dropped: dict[str, int] = {}
    for reason, check in drop_checks(cfg):
        bad = check(df) if len(df) else pd.Series(dtype=bool)
        if bad.any():
            dropped[reason] = int(bad.sum())
            df = df[~bad]
    keep = ["image_id", "label", "xmin", "ymin", "xmax", "ymax", "split", "box_key", "_file", "_line"]
    q = pd.concat(quarantined, ignore_index=True) if quarantined else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    return BoxTriage(kept=df[keep].reset_index(drop=True), quarantine=q, dropped=dropped)
