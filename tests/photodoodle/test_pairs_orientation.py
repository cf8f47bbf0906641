"""EXIF orientation in pair ingest: a phone photo stored sideways with Orientation 6 and the upright
export an editing app writes are one frame; when a pair still mismatches, the reason says EXIF and
names the pair's meta.jsonl line."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from doodleflow.data.imageio import decode_rgb
from doodleflow.data.orientation import apply_exif, exif_orientation
from doodleflow.data.pairs import ingest_pairs_in_process
from doodleflow.data.pairs_synthetic import write_photodoodle_style
from doodleflow.data.store import DatasetStore
from PIL import Image, ImageOps

PHOTO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "photodoodle", "1.png")


def _upright() -> Image.Image:
    """A real photo (PhotoDoodle's assets/1.png) cut to a portrait 300x450 frame."""
    im = Image.open(PHOTO).convert("RGB")
    w, h = im.size
    side = min(w, h * 2 // 3)
    return im.crop((0, 0, side, side * 3 // 2)).resize((300, 450), Image.BILINEAR)


def _phone_jpeg(upright: Image.Image, orientation: int) -> bytes:
    """What a phone writes: the pixels as the sensor read them, and the EXIF tag that turns them up."""
    inverse = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    stored = upright.transpose(inverse[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_exif_matches_pillows_exif_transpose(orientation):
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", exif=exif.tobytes())
    assert exif_orientation(buf.getvalue()) == orientation
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    assert np.array_equal(apply_exif(rgb, orientation), expected)


def test_a_phone_photo_and_its_upright_export_are_one_frame(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    d = write_photodoodle_style(src, "magic", 2, seed=1, photo_path=PHOTO)
    up = _upright()
    with open(os.path.join(d, "source", "phone.jpg"), "wb") as f:
        f.write(_phone_jpeg(up, 6))  # stored 450x300, shown 300x450
    up.save(os.path.join(d, "target", "phone.jpg"), quality=95)  # the editing app's upright export
    up.transpose(Image.Transpose.ROTATE_90).save(os.path.join(d, "target", "sideways.jpg"), quality=95)
    with open(os.path.join(d, "meta.jsonl"), "a") as f:
        for tgt in ("phone", "sideways"):
            f.write(
                json.dumps(
                    {"source": "source/phone.jpg", "target": f"target/{tgt}.jpg", "text": "x by sksmagic"}
                )
                + "\n"
            )
    s = ingest_pairs_in_process(src, "styles", store)
    assert s["pairs_total"] == 3 and s["quarantined"] == {"size_mismatch": 1}
    rows = {r["target_path"]: r for r in DatasetStore(store, "styles").read_table(1).to_pylist()}
    r = rows["magic/target/phone.jpg"]
    assert (r["width"], r["height"]) == (300, 450) and r["target_size"] == [300, 450]
    source = decode_rgb(r["source_jpeg"])  # stored upright: no reader has to know EXIF
    assert source.shape == (450, 300, 3)
    diff = np.abs(source.astype(int) - np.asarray(up, dtype=int)).mean()
    assert diff < 4, diff  # the same content, not the sideways pixels (those differ by ~40)
    (q,) = DatasetStore(store, "styles").read_table(1, name="_quarantine.parquet").to_pylist()
    assert (q["reason"], q["file"], q["line"]) == ("size_mismatch", "magic/meta.jsonl", 4)
    assert "source 300x450 (EXIF Orientation 6 applied; stored 450x300)" in q["detail"]
    assert "target 450x300" in q["detail"] and "the sides are swapped" in q["detail"]


def test_generate_reads_a_phone_photo_upright(tmp_path):
    """Both generate commands read the photo as the phone shows it, so the edit keeps that frame and a
    mask drawn on the upright view fits it."""
    from doodleflow.training.inference.pbe_inputs import read_image
    from doodleflow.training.inference.photodoodle import read_photo

    up = _upright()
    path = tmp_path / "phone.jpg"
    path.write_bytes(_phone_jpeg(up, 6))  # stored 450x300
    for img in (read_photo(str(path)), read_image(str(path), "--image").convert("RGB")):
        assert img.size == (300, 450)
        diff = np.abs(np.asarray(img, dtype=np.int16) - np.asarray(up, dtype=np.int16))
        assert diff.mean() < 4  # JPEG round-trip noise only; sideways would differ by ~50
