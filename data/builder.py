"""Build Paint-by-Example samples from one source image: PbE's `__getitem__`, made deterministic.

For each (box, variant) job of an image: plan the geometry from the sample's own RNG (pure function
of seed, image, box, variant), decode at the sample's own smallest lossless DCT scale (once per
distinct scale, so usually once per image), then cut, resize, draw and encode. Output rows follow
`data/schema.py`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from doodleflow.data.augment import augment_reference
from doodleflow.data.config import CurationConfig
from doodleflow.data.geometry import PixelBox, box_to_pixels, extend_box, pad_box, scale_box, square_crop
from doodleflow.data.imageio import dct_divisor, decode_rgb, encode_jpeg, encode_png_gray, image_size, resize
from doodleflow.data.mask import bezier_polygon, output_mask
from doodleflow.data.orientation import rotate_box_ccw, rotate_ccw
from doodleflow.data.rng import SampleRng

# BUILDER_VERSION (bump when sample bytes change) lives beside the sample schema: the input snapshot
# reads it without loading the image libraries. Re-exported here for the builder's readers.
from doodleflow.data.schema import BUILDER_VERSION  # noqa: F401


@dataclass(frozen=True)
class BoxJob:
    sample_id: str
    label: str
    label_name: str
    box: tuple[float, float, float, float]  # normalized xmin, ymin, xmax, ymax
    variant: int
    seed: int


@dataclass(frozen=True)
class ImageJob:
    image_id: str
    uri: str
    split: str
    boxes: tuple[BoxJob, ...]
    rotation: int = 0  # quarter turns counter-clockwise that make image and boxes upright (--upright)


@dataclass
class Plan:
    job: BoxJob
    box: PixelBox
    ref: PixelBox
    ext: PixelBox
    window: PixelBox
    mask_kind: str
    polygon: list = field(default_factory=list)
    aug_seed: int = 0


@dataclass
class ImageResult:
    rows: list[dict]
    quarantined: list[tuple[BoxJob, str, str]]  # (job, reason, detail)
    dropped: list[tuple[BoxJob, str]]  # (job, reason): valid input the filter does not want


def plan_sample(job: BoxJob, width: int, height: int, cfg: CurationConfig) -> Plan | str:
    """The geometry of one sample, or the reason it cannot be built."""
    sc = cfg.sample
    box = box_to_pixels(job.box[0], job.box[1], job.box[2], job.box[3], width, height)
    if box.width <= 0 or box.height <= 0:
        return "degenerate_box"
    if min(box.width, box.height) < cfg.boxes.min_side_px:
        return "min_side"
    rng = SampleRng(job.seed)
    ext = extend_box(box, width, height, sc.extend_ratio, rng)
    kind = "bezier" if rng.uniform() < sc.bezier_mask_prob else "box"
    polygon = bezier_polygon(box, ext, sc.bezier_jitter_px, rng) if kind == "bezier" else []
    window = square_crop(ext, width, height, sc.crop_shrink_ratio, rng)
    ref = pad_box(box, width, height, sc.reference_pad_px)
    return Plan(job, box, ref, ext, window, kind, polygon, rng.child_seed())


def decode_factor(plans: list[Plan], cfg: CurationConfig) -> float:
    """Smallest scale at which every window still has >= image_size px and every reference crop
    keeps min(its size, reference_size) px per side: DCT scaling then loses nothing we output."""
    need = 0.0
    for p in plans:
        need = max(
            need,
            cfg.sample.image_size / p.window.width,
            cfg.sample.image_size / p.window.height,
            cfg.sample.reference_size / p.ref.width,
            cfg.sample.reference_size / p.ref.height,
        )
    return min(1.0, need)


def dct_divisor_of(plan: Plan, width: int, height: int, cfg: CurationConfig) -> int:
    """The sample's own DCT scale 1/k. Per sample, not per image: a sample's bytes must not depend on
    which other boxes of its image are built with it (an incremental refresh builds it alone)."""
    f = decode_factor([plan], cfg)
    return dct_divisor(width, height, math.ceil(width * f), math.ceil(height * f))


def render(plan: Plan, img: np.ndarray, full_size: tuple[int, int], cfg: CurationConfig) -> dict:
    sc = cfg.sample
    sx, sy = img.shape[1] / full_size[0], img.shape[0] / full_size[1]
    win = scale_box(plan.window, sx, sy)
    crop = img[win.y0 : win.y1, win.x0 : win.x1]
    out = (sc.image_size, sc.image_size)
    target = resize(crop, out)
    mask = output_mask(
        plan.mask_kind, plan.window, (sx, sy), (win.width, win.height), plan.ext, plan.polygon, out
    )
    if sc.binarize_mask:
        mask = np.where(mask >= 128, 255, 0).astype(np.uint8)
    r = scale_box(plan.ref, sx, sy)
    reference, aug = augment_reference(img[r.y0 : r.y1, r.x0 : r.x1], sc, plan.aug_seed)
    j = plan.job
    return {
        "sample_id": j.sample_id,
        "label": j.label,
        "label_name": j.label_name,
        "variant": j.variant,
        "seed": j.seed,
        "box": list(j.box),
        "box_px": list(plan.box),
        "extended_box_px": list(plan.ext),
        "crop_window_px": list(plan.window),
        "reference_box_px": list(plan.ref),
        "image_size": list(full_size),
        "mask_kind": plan.mask_kind,
        "aug_params": aug,
        "decode_scale": round(sx, 6),
        "target_jpeg": encode_jpeg(target, sc.jpeg_quality),
        "mask_png": encode_png_gray(mask),
        "reference_jpeg": encode_jpeg(reference, sc.jpeg_quality),
    }


def _turned(job: ImageJob) -> list[BoxJob]:
    """The jobs with their boxes on the upright image (OpenImages draws them on the stored pixels)."""
    if not job.rotation:
        return list(job.boxes)
    return [dataclasses.replace(b, box=rotate_box_ccw(b.box, job.rotation)) for b in job.boxes]


def build_image(job: ImageJob, buf: bytes, cfg: CurationConfig) -> ImageResult:
    """All samples of one image; an unreadable image quarantines each of its jobs. With a rotation,
    pixels and boxes are turned together, so every sample is built on the upright image."""
    res = ImageResult([], [], [])
    try:
        stored = image_size(buf)
    except ValueError as e:
        res.quarantined = [(b, "unreadable_image", str(e)[:300]) for b in job.boxes]
        return res
    width, height = stored[::-1] if job.rotation % 2 else stored
    plans = []
    for b, turned in zip(job.boxes, _turned(job), strict=True):
        p = plan_sample(turned, width, height, cfg)
        if isinstance(p, Plan):
            plans.append(p)
        elif p == "min_side":
            res.dropped.append((b, p))
        else:
            res.quarantined.append((b, p, f"box {b.box} on {width}x{height} image"))
    by_id = {b.sample_id: b for b in job.boxes}
    # One decode per distinct DCT scale (usually one per image), reused by every sample that needs it.
    decoded: dict[int, np.ndarray | ValueError] = {}
    for p in plans:
        k = dct_divisor_of(p, width, height, cfg)
        if k not in decoded:
            try:
                img = decode_rgb(buf, min_width=-(-stored[0] // k), min_height=-(-stored[1] // k))
                decoded[k] = rotate_ccw(img, job.rotation)
            except ValueError as e:
                decoded[k] = e
        got = decoded[k]
        if isinstance(got, ValueError):
            res.quarantined.append((by_id[p.job.sample_id], "unreadable_image", str(got)[:300]))
            continue
        img = got
        row = render(p, img, (width, height), cfg)
        row.update(
            image_id=job.image_id, split=job.split, box=list(by_id[p.job.sample_id].box)
        )  # as annotated
        res.rows.append(row)
    return res
