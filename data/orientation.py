"""Which way is up: EXIF orientation (photos from phones and cameras) and OpenImages' `Rotation`.

EXIF: a camera stores the sensor's pixels as read and records in the EXIF `Orientation` tag (0x0112)
how to turn them for display (values 1-8, EXIF 2.32 section 4.6.4, the same mapping as Pillow's
`ImageOps.exif_transpose`). Editing apps apply it when they export, so a phone photo with
Orientation 6 and its edited export only show the same frame once the tag is applied.

OpenImages: the boxes were drawn on the pixels as stored, with EXIF ignored. The image index's
`Rotation` column (0, 90, 180, 270; empty when unknown) gives "the degrees (counterclockwise) that
the image and boxes should be rotated" to recover the author's intended orientation
(storage.googleapis.com/openimages/web/2018-05-17-rotation-information.html). So the stored pixels
and the boxes always agree; rotating for an upright sample turns both, with `rotate_ccw` and
`rotate_box_ccw`.
"""

from __future__ import annotations

import io

import numpy as np

ORIENTATION_TAG = 0x0112


def exif_orientation(buf: bytes) -> int:
    """The EXIF Orientation (1-8) of an image file; 1 when absent, invalid or unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(buf)) as im:  # reads the header only
            o = int(im.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # no EXIF or a broken one: the decoder decides whether the file is readable
        return 1
    return o if 1 <= o <= 8 else 1


def apply_exif(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as they are meant to be displayed (HxWxC, any dtype)."""
    ops = {
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # rotated 180
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # turned 90 clockwise for display
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, 1),  # turned 90 counter-clockwise for display
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(rgb)) if op else rgb


def swaps_sides(orientation: int) -> bool:
    return orientation in (5, 6, 7, 8)


def rotation_steps(degrees: float | int | None) -> int:
    """OpenImages `Rotation` -> quarter turns counter-clockwise (0-3); unknown (None, NaN) -> 0."""
    if degrees is None or degrees != degrees:
        return 0
    d = round(float(degrees)) % 360
    if d % 90:
        raise ValueError(f"Rotation {degrees}: not a multiple of 90 degrees")
    return d // 90


def rotate_ccw(img: np.ndarray, steps: int) -> np.ndarray:
    """The image turned `steps` quarter turns counter-clockwise."""
    return np.ascontiguousarray(np.rot90(img, steps)) if steps % 4 else img


def rotate_box_ccw(box: tuple[float, float, float, float], steps: int) -> tuple[float, float, float, float]:
    """A normalized (xmin, ymin, xmax, ymax) box on an image turned with `rotate_ccw`: a point (x, y)
    goes to (y, 1 - x) per quarter turn."""
    x0, y0, x1, y1 = box
    for _ in range(steps % 4):
        x0, y0, x1, y1 = y0, 1.0 - x1, y1, 1.0 - x0
    return x0, y0, x1, y1
