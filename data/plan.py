"""Planning a refresh: inputs -> sample jobs -> what is new against the previous version -> work units.

Planning reads only annotations and a listing of the images root (no pixels), so it is cheap and
deterministic: the same inputs and previous version always give the same work units with the same
keys, which is what lets a rerun after a crash skip every shard that was already written.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass

import pandas as pd
from doodleflow.data.boxes import QUARANTINE_COLUMNS, BoxTriage, triage_boxes
from doodleflow.data.builder import BUILDER_VERSION, BoxJob, ImageJob
from doodleflow.data.config import CurationConfig
from doodleflow.data.errors import InputError
from doodleflow.data.fsutil import filesystem
from doodleflow.data.openimages import locate_source, read_bbox_csv, read_class_descriptions
from doodleflow.data.rng import sample_seed

IMAGE_EXTS = (".jpg", ".jpeg")


@dataclass(frozen=True)
class WorkUnit:
    key: str
    images: tuple[ImageJob, ...]

    @property
    def n_samples(self) -> int:
        return sum(len(i.boxes) for i in self.images)


@dataclass
class InputPlan:
    """Everything the inputs say, before comparing with the store."""

    jobs: pd.DataFrame  # one row per sample to exist in the version
    images: pd.DataFrame  # image_id, uri, fingerprint (the input snapshot)
    triage: BoxTriage
    quarantine: pd.DataFrame  # annotation rows + boxes whose image is missing
    inputs: dict  # files the plan came from, with sizes and hashes


def index_images(images_root: str) -> pd.DataFrame:
    """image_id -> uri and a change fingerprint (size + mtime locally, size + ETag on S3)."""
    fs, root = filesystem(images_root)
    s3 = images_root.startswith("s3://")
    rows = []
    for path, info in sorted(fs.find(root, detail=True).items()):
        name = posixpath.basename(path)
        stem, ext = posixpath.splitext(name)
        if ext.lower() not in IMAGE_EXTS:
            continue
        tag = info.get("ETag", "").strip('"') if s3 else f"{info.get('mtime', 0):.6f}"
        rows.append((stem, f"s3://{path}" if s3 else path, f"{info.get('size', 0)}:{tag}"))
    df = pd.DataFrame(rows, columns=["image_id", "uri", "fingerprint"])
    # The same ImageID in two shard folders: keep the first in sorted order, deterministically.
    return df.drop_duplicates("image_id", keep="first").reset_index(drop=True)


def _file_record(uri: str) -> dict:
    fs, path = filesystem(uri)
    data = fs.cat_file(path)
    return {"uri": uri, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def plan_inputs(source: str, images: str | None, cfg: CurationConfig) -> InputPlan:
    layout = locate_source(source, images)
    classes = read_class_descriptions(layout.class_descriptions)
    need = (("IsGroupOf",) if cfg.boxes.drop_group_of else ()) + (
        ("IsDepiction",) if cfg.boxes.drop_depiction else ()
    )
    frames = [read_bbox_csv(uri, need) for uri in layout.bbox_csvs]  # all read before any work
    triage = triage_boxes(pd.concat(frames, ignore_index=True), classes, cfg.boxes)
    index = index_images(layout.images_root)
    if index.empty:
        raise InputError(f"images root {layout.images_root}: no *.jpg files")
    kept = triage.kept.merge(index, on="image_id", how="left")
    missing = kept["uri"].isna()
    q_missing = pd.DataFrame(
        {
            "file": kept.loc[missing, "_file"],
            "line": kept.loc[missing, "_line"],
            "image_id": kept.loc[missing, "image_id"],
            "label": kept.loc[missing, "label"],
            "sample_id": "",
            "reason": "missing_image",
            "detail": "no <shard>/<ImageID>.jpg under " + layout.images_root,
        }
    )
    jobs = _expand_variants(kept[~missing], classes, cfg)
    inputs = {
        "class_descriptions": _file_record(layout.class_descriptions),
        "annotations": [_file_record(u) for u in layout.bbox_csvs],
        "images_root": layout.images_root,
        "images": len(index),
    }
    quarantine = pd.concat([triage.quarantine, q_missing], ignore_index=True)[QUARANTINE_COLUMNS]
    return InputPlan(jobs, index, triage, quarantine, inputs)


def _expand_variants(kept: pd.DataFrame, classes: dict[str, str], cfg: CurationConfig) -> pd.DataFrame:
    frames = []
    for v in range(cfg.variants):
        f = kept.copy()
        f["variant"] = v
        frames.append(f)
    jobs = pd.concat(frames, ignore_index=True) if frames else kept.assign(variant=0)
    jobs["sample_id"] = jobs["image_id"] + "-" + jobs["box_key"] + "-v" + jobs["variant"].astype(str)
    jobs["seed"] = [
        sample_seed(cfg.seed, i, k, v)
        for i, k, v in zip(jobs["image_id"], jobs["box_key"], jobs["variant"], strict=True)
    ]
    jobs["label_name"] = jobs["label"].map(classes)
    return jobs.sort_values("sample_id").reset_index(drop=True)


def make_units(jobs: pd.DataFrame, cfg: CurationConfig) -> list[WorkUnit]:
    """Group jobs by image (one decode per image) and cut into units of ~samples_per_shard samples."""
    fps = dict(zip(jobs["image_id"], jobs["fingerprint"], strict=False))
    units: list[WorkUnit] = []
    current: list[ImageJob] = []
    count = 0
    for image_id, g in jobs.sort_values(["image_id", "sample_id"]).groupby("image_id", sort=True):
        boxes = tuple(
            BoxJob(
                r.sample_id,
                r.label,
                r.label_name,
                (r.xmin, r.ymin, r.xmax, r.ymax),
                int(r.variant),
                int(r.seed),
            )
            for r in g.itertuples()
        )
        first = g.iloc[0]
        current.append(ImageJob(str(image_id), first["uri"], first["split"], boxes))
        count += len(boxes)
        if count >= cfg.samples_per_shard:
            units.append(_unit(current, fps, cfg))
            current, count = [], 0
    if current:
        units.append(_unit(current, fps, cfg))
    return units


def _unit(images: list[ImageJob], fps: dict[str, str], cfg: CurationConfig) -> WorkUnit:
    """The key names the unit's exact content: config, builder version, images and their bytes."""
    h = hashlib.sha256(f"{cfg.content_hash()}|{BUILDER_VERSION}".encode())
    for img in images:
        h.update(f"|{img.image_id}:{fps[img.image_id]}:".encode())
        h.update(",".join(b.sample_id for b in img.boxes).encode())
    return WorkUnit(h.hexdigest()[:24], tuple(images))
