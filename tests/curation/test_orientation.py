"""OpenImages orientation: boxes are drawn on the pixels as stored (EXIF ignored), and the image index's
`Rotation` turns image and boxes together (data/orientation.py). A real OpenImages photo stored
sideways, with an EXIF tag that says so and Rotation 270, gives samples whose box lands on the same
penguin as on the upright photo."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.imageio import decode_rgb, resize
from doodleflow.data.orientation import rotate_box_ccw, rotation_steps
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore
from PIL import Image

from tests.curation.oi_mirror import PENGUIN_BOXES, PENGUIN_ID, fixture

W, H = 1109, 832  # the upright photo
TURNED = "e000000000000001"  # the same photo as a camera stores it: turned a quarter counter-clockwise


def _sideways_jpeg(upright: np.ndarray) -> bytes:
    """Sensor pixels (the upright photo turned 90 degrees counter-clockwise) with EXIF Orientation 6."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 clockwise to display"
    buf = io.BytesIO()
    Image.fromarray(np.rot90(upright, 1)).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def _stored_box(x0: int, y0: int, x1: int, y1: int) -> tuple[float, float, float, float]:
    """An upright pixel box as drawn on the stored (turned) pixels, normalized: upright (x, y) is
    stored column y, row W-1-x; +0.5 px so that int(coord * size) lands on the pixel."""
    return (y0 + 0.5) / H, (W - x1 + 0.5) / W, (y1 + 0.5) / H, (W - x0 + 0.5) / W


def _source(root: str) -> np.ndarray:
    photo = fixture(f"{PENGUIN_ID}.jpg")
    upright = decode_rgb(photo)
    os.makedirs(os.path.join(root, "images", "train"))
    with open(os.path.join(root, "images", "train", f"{PENGUIN_ID}.jpg"), "wb") as f:
        f.write(photo)
    with open(os.path.join(root, "images", "train", f"{TURNED}.jpg"), "wb") as f:
        f.write(_sideways_jpeg(upright))
    rows = [
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
    ]
    for x0, y0, x1, y1 in PENGUIN_BOXES:
        up = ((x0 + 0.5) / W, (y0 + 0.5) / H, (x1 + 0.5) / W, (y1 + 0.5) / H)
        for iid, (a, b, c, d) in ((PENGUIN_ID, up), (TURNED, _stored_box(x0, y0, x1, y1))):
            rows.append(f"{iid},xclick,/m/05z6w,1,{a:.6f},{c:.6f},{b:.6f},{d:.6f},0,0,0,0,0")
    with open(os.path.join(root, "oidv6-train-annotations-bbox.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    index = fixture("train-images-boxable-with-rotation.head.csv").decode().splitlines()
    index += [f"{PENGUIN_ID},train,,,,,,,1,x,,0.0", f"{TURNED},train,,,,,,,1,x,,270.0"]
    with open(os.path.join(root, "train-images-boxable-with-rotation.csv"), "w") as f:
        f.write("\n".join(index) + "\n")
    with open(os.path.join(root, "class-descriptions-boxable.csv"), "wb") as f:
        f.write(fixture("class-descriptions-boxable.csv"))
    return upright


def test_box_rotation_follows_the_pixels():
    assert rotation_steps(270.0) == 3 and rotation_steps(None) == 0 and rotation_steps(float("nan")) == 0
    img = np.zeros((4, 6), np.uint8)
    img[1:3, 0:2] = 1  # a box at x in [0, 2), y in [1, 3) of a 6x4 image
    for steps in range(4):
        turned = np.rot90(img, steps)
        h, w = turned.shape
        x0, y0, x1, y1 = rotate_box_ccw((0 / 6, 1 / 4, 2 / 6, 3 / 4), steps)
        ys, xs = np.nonzero(turned)
        assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == pytest.approx(
            (x0 * w, x1 * w, y0 * h, y1 * h)
        )


def test_upright_samples_land_on_the_same_content(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    upright = _source(src)
    ds = DatasetStore(store, "rot")

    v1 = refresh_in_process(src, "rot", store)  # as annotated: the stored pixels, EXIF ignored
    assert v1["samples_total"] == 10
    rows = ds.read_table(1).to_pylist()
    stored = decode_rgb(open(os.path.join(src, "images", "train", f"{TURNED}.jpg"), "rb").read())
    assert stored.shape == (W, H, 3)  # the pixels as stored: 832 wide, 1109 high
    for r in (r for r in rows if r["image_id"] == TURNED):
        assert r["image_size"] == [H, W]
        x0, y0, x1, y1 = r["box_px"]  # the box on the stored pixels holds the (turned) penguin
        official = next(b for b in PENGUIN_BOXES if abs(b[1] - x0) <= 1 and abs(W - b[2] - y0) <= 1)
        bx0, by0, bx1, by1 = official
        assert np.abs(np.rot90(stored[y0:y1, x0:x1], 3).astype(int) - upright[by0:by1, bx0:bx1]).mean() < 6

    v2 = refresh_in_process(src, "rot", store, CurationConfig(upright=True))
    assert v2["samples_total"] == 10 and v2["samples_new"] == 5  # only the rotated image's samples change
    rows = {r["sample_id"]: r for r in ds.read_table(2).to_pylist()}
    turned = [r for r in rows.values() if r["image_id"] == TURNED]
    assert {tuple(r["image_size"]) for r in turned} == {(W, H)}
    for r in turned:
        got = r["box_px"]
        official = min(PENGUIN_BOXES, key=lambda b: sum(abs(p - q) for p, q in zip(b, got, strict=True)))
        assert all(abs(p - q) <= 1 for p, q in zip(official, got, strict=True)), (got, official)
        # the target is the upright photo's window: the box sits on the same penguin
        x0, y0, x1, y1 = r["crop_window_px"]
        want = resize(upright[y0:y1, x0:x1], (512, 512)).astype(int)
        assert np.abs(decode_rgb(r["target_jpeg"]).astype(int) - want).mean() < 8
        # `box` stays as annotated (on the stored pixels); box_px is it turned upright
        ub = rotate_box_ccw(tuple(r["box"]), 3)
        assert [int(ub[0] * W), int(ub[1] * H), int(ub[2] * W), int(ub[3] * H)] == got
