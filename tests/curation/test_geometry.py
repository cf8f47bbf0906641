"""Box, crop-window and mask geometry against hand-computed cases and real OpenImages crops."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from doodleflow.data.geometry import PixelBox, box_to_pixels, extend_box, pad_box, square_crop
from doodleflow.data.mask import bezier_control_points, bezier_polygon, draw_mask
from doodleflow.data.rng import SampleRng, sample_seed
from doodleflow.data.samples import OPENIMAGES_DIR, real_photos
from PIL import Image


class ScriptedRng(SampleRng):
    """Returns scripted values for randint (clamped into range) to hit exact hand-computed cases."""

    def __init__(self, values, uniform=0.0):
        self.values, self.u = list(values), uniform

    def randint(self, a, b):
        v = self.values.pop(0) if self.values else a
        v = {"max": b, "min": a}.get(v, v)
        assert a <= v <= b, (a, v, b)
        return v

    def uniform(self):
        return self.u


def test_box_to_pixels_truncates_like_pbe():
    assert box_to_pixels(0.1, 0.2, 0.5, 0.6, 1000, 500) == (100, 100, 500, 300)
    assert box_to_pixels(0.0999, 0.2, 0.5009, 0.6, 1000, 500) == (99, 100, 500, 300)


def test_pad_box_clamps_to_image():
    assert pad_box(PixelBox(5, 100, 990, 300), 1000, 500, 10) == (0, 90, 1000, 310)
    assert pad_box(PixelBox(50, 50, 60, 60), 100, 100, 10) == (40, 40, 70, 70)


def test_extend_box_uses_40_percent_of_free_space_per_side():
    box = PixelBox(100, 100, 500, 300)
    assert extend_box(box, 1000, 500, 0.4, ScriptedRng(["max"] * 4)) == (60, 60, 700, 380)
    assert extend_box(box, 1000, 500, 0.4, ScriptedRng(["min"] * 4)) == box


def test_square_crop_landscape_hand_computed():
    # ext spans x 350..650 on a 1000x500 image: window x in [150, 350]; at 250 the free margin is 60
    win = square_crop(PixelBox(350, 60, 650, 380), 1000, 500, 0.6, ScriptedRng([250, 36]))
    assert win == (286, 36, 714, 464)
    assert win.width == win.height == 428


def test_square_crop_portrait_hand_computed():
    win = square_crop(PixelBox(60, 350, 380, 650), 500, 1000, 0.6, ScriptedRng([250, 36]))
    assert win == (36, 286, 464, 714)


def test_square_crop_falls_back_to_whole_image():
    # no 500-wide window holds x 60..700; a square image is never cropped
    assert square_crop(PixelBox(60, 60, 700, 380), 1000, 500, 0.6, ScriptedRng([])) == (0, 0, 1000, 500)
    assert square_crop(PixelBox(10, 10, 20, 20), 300, 300, 0.6, ScriptedRng([])) == (0, 0, 300, 300)


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024), (1109, 832), (640, 640)])
def test_geometry_invariants_on_random_boxes(size):
    w, h = size
    for i in range(300):
        rng = SampleRng(sample_seed(0, "img", str(i), 0))
        x0, y0 = rng.randint(0, w - 20), rng.randint(0, h - 20)
        box = PixelBox(x0, y0, rng.randint(x0 + 10, w), rng.randint(y0 + 10, h))
        ext = extend_box(box, w, h, 0.4, rng)
        win = square_crop(ext, w, h, 0.6, rng)
        assert (
            0 <= ext.x0 <= box.x0
            and 0 <= ext.y0 <= box.y0
            and box.x1 <= ext.x1 <= w
            and box.y1 <= ext.y1 <= h
        )
        assert win.x0 <= ext.x0 and win.y0 <= ext.y0 and ext.x1 <= win.x1 and ext.y1 <= win.y1
        assert win.x0 >= 0 and win.y0 >= 0 and win.x1 <= w and win.y1 <= h
        assert win == (0, 0, w, h) or win.width == win.height


def test_official_boxes_cut_the_published_crops():
    """The crops in realdata were cut from the official OpenImages boxes with int(norm * size); our
    pixel conversion of the same boxes must cut byte-identical crops from the same photo."""
    checked = 0
    for photo in real_photos():
        full = np.asarray(Image.open(photo["path"]).convert("RGB"))
        w, h = photo["size"]
        assert full.shape[:2] == (h, w)
        for norm, pixels, name in zip(photo["boxes"], photo["pixel_boxes"], photo["crops"], strict=True):
            box = box_to_pixels(*norm, w, h)
            assert list(box) == pixels
            crop_path = os.path.join(OPENIMAGES_DIR, "crops", name)
            if os.path.exists(crop_path):
                expected = np.asarray(Image.open(crop_path).convert("RGB"))
                assert np.array_equal(full[box.y0 : box.y1, box.x0 : box.x1], expected)
                checked += 1
    assert checked == 5


def test_reference_crop_is_box_padded_by_10px_on_real_photo():
    photo = real_photos()[0]
    w, h = photo["size"]
    box = box_to_pixels(*photo["boxes"][0], w, h)  # (88, 396, 242, 617) on 1109x832
    assert pad_box(box, w, h, 10) == (78, 386, 252, 627)


def test_bezier_control_points_hand_computed():
    box, ext = PixelBox(100, 100, 300, 200), PixelBox(50, 80, 350, 260)
    assert bezier_control_points(box, ext) == [
        ((100, 100), (200.0, 80), (300, 100)),
        ((300, 100), (350, 150.0), (300, 200)),
        ((300, 200), (200.0, 260), (100, 200)),
        ((100, 200), (50, 150.0), (100, 100)),
    ]


def test_bezier_polygon_points_without_jitter():
    box, ext = PixelBox(100, 100, 300, 200), PixelBox(50, 80, 350, 260)
    pts = bezier_polygon(box, ext, 5, ScriptedRng([0] * 200))
    # Each curve is symmetric about t = 0.5, so for t > 0.5 the y (top/bottom) or x (left/right) of an
    # earlier point comes back and PbE skips the point, unless float rounding makes it differ.
    assert 4 * 10 <= len(pts) <= 4 * 18
    assert pts[0] == pytest.approx((110.0, 98.1))  # top curve at t = 0.05
    assert pts[9] == pytest.approx((200.0, 90.0))  # top curve at t = 0.5: pulled halfway to ext.y0


def test_bezier_polygon_skips_repeated_coordinates():
    """A top side whose control point does not move keeps y == 0 exactly: PbE keeps one point of it."""
    box, ext = PixelBox(100, 0, 300, 200), PixelBox(50, 0, 350, 260)
    pts = bezier_polygon(box, ext, 5, ScriptedRng([0] * 200))
    assert sum(1 for x, y in pts if y == 0) == 1
    assert 1 + 3 * 10 <= len(pts) < 1 + 3 * 18


def test_bezier_jitter_is_bounded():
    box, ext = PixelBox(100, 100, 300, 200), PixelBox(50, 80, 350, 260)
    clean = bezier_polygon(box, ext, 5, ScriptedRng([0] * 200))
    noisy = bezier_polygon(box, ext, 5, SampleRng(7))
    d = np.abs(np.array(noisy) - np.array(clean))
    assert d.max() <= 5 and d.max() > 0


def test_rectangle_mask_covers_exactly_the_extended_box():
    m = draw_mask("box", PixelBox(0, 0, 100, 100), (1.0, 1.0), (100, 100), PixelBox(10, 20, 30, 40), [])
    assert m.dtype == np.uint8 and m.shape == (100, 100)
    assert (m[20:40, 10:30] == 255).all() and m.sum() == 20 * 20 * 255


def test_rectangle_mask_in_a_window_at_half_scale():
    m = draw_mask(
        "box", PixelBox(100, 100, 300, 300), (0.5, 0.5), (100, 100), PixelBox(120, 140, 160, 200), []
    )
    assert (m[20:50, 10:30] == 255).all() and m.sum() == 30 * 20 * 255


def test_bezier_mask_area_matches_polygon_area():
    box, ext = PixelBox(100, 100, 300, 200), PixelBox(50, 80, 350, 260)
    pts = bezier_polygon(box, ext, 5, SampleRng(3))
    m = draw_mask("bezier", PixelBox(0, 0, 400, 300), (1.0, 1.0), (400, 300), ext, pts)
    x, y = np.array(pts).T
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert (m == 255).sum() == pytest.approx(shoelace, rel=0.03)
    assert set(np.unique(m)) == {0, 255}


def test_png_roundtrip_of_mask_is_lossless():
    from doodleflow.data.imageio import encode_png_gray

    m = draw_mask("box", PixelBox(0, 0, 64, 64), (1.0, 1.0), (64, 64), PixelBox(5, 5, 20, 30), [])
    back = np.asarray(Image.open(io.BytesIO(encode_png_gray(m))))
    assert back.shape == (64, 64) and np.array_equal(back, m)


def test_png_of_mask_is_single_channel_8bit_and_reads_back_everywhere():
    import cv2
    from doodleflow.data.imageio import encode_png_gray

    m = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)  # odd sizes, every value
    buf = encode_png_gray(m)
    with Image.open(io.BytesIO(buf)) as im:
        im.verify()  # checks the chunk CRCs
    with Image.open(io.BytesIO(buf)) as im:
        assert im.mode == "L" and im.size == (53, 37) and np.array_equal(np.asarray(im), m)
    assert np.array_equal(cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED), m)
    with pytest.raises(ValueError):
        encode_png_gray(np.zeros((4, 4, 3), np.uint8))
