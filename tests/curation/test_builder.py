"""The sample builder: output formats, geometry of the outputs, determinism, bad image bytes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from doodleflow.data.builder import BoxJob, ImageJob, build_image
from doodleflow.data.config import CurationConfig
from doodleflow.data.rng import sample_seed
from doodleflow.data.samples import real_photos
from doodleflow.data.synthetic import random_box, synthetic_image
from PIL import Image


def _jpeg(size=(1024, 768), boxes=(), seed=0) -> bytes:
    buf = io.BytesIO()
    synthetic_image(np.random.default_rng(seed), size, list(boxes)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _job(boxes, image_id="img", variants=1, seed=0) -> ImageJob:
    jobs = tuple(
        BoxJob(f"{image_id}-{i}-v{v}", "/m/a", "A", b, v, sample_seed(seed, image_id, str(i), v))
        for i, b in enumerate(boxes)
        for v in range(variants)
    )
    return ImageJob(image_id, "mem://", "train", jobs)


def _img(b: bytes, mode=None) -> np.ndarray:
    im = Image.open(io.BytesIO(b))
    assert mode is None or im.mode == mode
    return np.asarray(im)


def test_outputs_have_the_stored_formats():
    boxes = [(0.2, 0.25, 0.6, 0.7)]
    res = build_image(_job(boxes), _jpeg(boxes=boxes), CurationConfig())
    (row,) = res.rows
    assert _img(row["target_jpeg"], "RGB").shape == (512, 512, 3)
    assert _img(row["mask_png"], "L").shape == (512, 512)
    assert _img(row["reference_jpeg"], "RGB").shape == (224, 224, 3)
    assert row["image_size"] == [1024, 768] and row["box_px"] == [204, 192, 614, 537]
    assert isinstance(json.loads(row["aug_params"]), list)


def test_mask_covers_the_box_inside_the_crop_window():
    boxes = [(0.3, 0.3, 0.5, 0.6)]
    for v in range(8):  # both mask kinds occur across variants
        row = build_image(_job(boxes, variants=8), _jpeg(boxes=boxes), CurationConfig()).rows[v]
        m = _img(row["mask_png"])
        wx0, wy0, wx1, wy1 = row["crop_window_px"]
        sx, sy = 512 / (wx1 - wx0), 512 / (wy1 - wy0)
        x0, y0, x1, y1 = row["box_px"]
        j = int(np.ceil(6 * max(sx, sy))) + 2  # the Bezier jitter (5 px) at output scale, plus the soft edge
        # the box's inner part is always to be repainted ...
        inner = m[
            int((y0 - wy0) * sy) + j : int((y1 - wy0) * sy) - j,
            int((x0 - wx0) * sx) + j : int((x1 - wx0) * sx) - j,
        ]
        assert inner.min() == 255, row["mask_kind"]
        # ... and nothing outside the extended box (plus the jitter) is
        ex0, ey0, ex1, ey1 = row["extended_box_px"]
        outside = np.ones_like(m, bool)
        outside[
            max(int((ey0 - wy0) * sy) - j, 0) : int((ey1 - wy0) * sy) + j,
            max(int((ex0 - wx0) * sx) - j, 0) : int((ex1 - wx0) * sx) + j,
        ] = False
        assert m[outside].max(initial=0) == 0


def test_same_inputs_give_identical_bytes():
    boxes = [random_box(np.random.default_rng(i)) for i in range(3)]
    buf = _jpeg(boxes=boxes)
    a = build_image(_job(boxes, variants=2), buf, CurationConfig())
    b = build_image(_job(boxes, variants=2), buf, CurationConfig())
    assert [r["target_jpeg"] for r in a.rows] == [r["target_jpeg"] for r in b.rows]
    assert a.rows == b.rows


def test_a_sample_does_not_depend_on_the_other_boxes_of_its_image():
    """Per-sample purity: an incremental refresh that adds a box to an image builds it alone, a fresh
    refresh builds it with its siblings; the bytes must be the same."""
    small, big = (0.45, 0.45, 0.6, 0.62), (0.05, 0.05, 0.95, 0.95)
    buf = _jpeg(size=(2400, 1800), boxes=[small, big])
    both = build_image(_job([big, small]), buf, CurationConfig()).rows
    alone = build_image(_job([big]), buf, CurationConfig()).rows
    assert both[0] == alone[0]


def test_variants_differ_and_seeds_are_recorded():
    boxes = [(0.2, 0.2, 0.6, 0.6)]
    rows = build_image(_job(boxes, variants=4), _jpeg(boxes=boxes), CurationConfig()).rows
    assert len({r["target_jpeg"] for r in rows}) == 4
    assert [r["variant"] for r in rows] == [0, 1, 2, 3] and len({r["seed"] for r in rows}) == 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_unreadable_image_quarantines_every_box(damage):
    boxes = [(0.2, 0.2, 0.6, 0.6), (0.1, 0.1, 0.5, 0.5)]
    good = _jpeg(boxes=boxes)
    buf = {"truncate": good[: len(good) // 2], "garbage": b"not an image" * 20, "empty": b""}[damage]
    res = build_image(_job(boxes), buf, CurationConfig())
    assert res.rows == [] and [q[1] for q in res.quarantined] == ["unreadable_image"] * 2
    assert all(q[2] for q in res.quarantined)  # a detail says why


def test_min_side_filter_drops_with_reason():
    from doodleflow.data.config import BoxFilterConfig

    boxes = [(0.1, 0.1, 0.2, 0.5)]  # 102 px wide on 1024
    cfg = CurationConfig(boxes=BoxFilterConfig(min_side_px=150))
    res = build_image(_job(boxes), _jpeg(boxes=boxes), cfg)
    assert res.rows == [] and [d[1] for d in res.dropped] == ["min_side"]


def test_reference_of_a_real_photo_is_its_padded_official_box():
    """With no augmentation drawn, the reference is the padded box of the real photo resized to 224."""
    photo = real_photos()[0]
    buf = open(photo["path"], "rb").read()
    full = np.asarray(Image.open(photo["path"]).convert("RGB")).astype(float)
    box = photo["boxes"][0]
    jobs = tuple(
        BoxJob(f"p-{v}", photo["label"], "Penguin", box, v, sample_seed(0, photo["image_id"], "b0", v))
        for v in range(16)
    )
    rows = build_image(ImageJob(photo["image_id"], photo["path"], "train", jobs), buf, CurationConfig()).rows
    plain = [r for r in rows if r["aug_params"] == "[]"]
    assert plain, "some variant draws no augmentation (p = 0.5 * 0.5 * 0.7 * 0.7)"
    x0, y0, x1, y1 = plain[0]["reference_box_px"]
    assert (x0, y0, x1, y1) == (78, 386, 252, 627)

    def diff(dx: int) -> float:
        crop = full[y0:y1, x0 + dx : x1 + dx].astype(np.uint8)
        expected = np.asarray(Image.fromarray(crop).resize((224, 224), Image.BOX)).astype(float)
        return float(np.abs(_img(plain[0]["reference_jpeg"]).astype(float) - expected).mean())

    # resampling filters and JPEG differ a little; a crop 8 px off differs a lot more
    assert diff(0) < 6.0 and diff(0) < 0.5 * min(diff(-8), diff(8))
