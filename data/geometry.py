"""Box, crop and window geometry of a Paint-by-Example sample, in full-resolution pixels.

Boxes are end-exclusive `(x0, y0, x1, y1)` integer pixel boxes, as PbE slices arrays with them
(`img[y0:y1, x0:x1]`). Each function mirrors one block of PbE's `OpenImageDataset.__getitem__`,
with its random draws made in the same order from a `SampleRng`.
"""

from __future__ import annotations

from typing import NamedTuple

from doodleflow.data.rng import SampleRng


class PixelBox(NamedTuple):
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def box_to_pixels(xmin: float, ymin: float, xmax: float, ymax: float, width: int, height: int) -> PixelBox:
    """PbE's read_bbox.py writes `coord * size` as floats and the loader truncates with `int(float(..))`."""
    return PixelBox(int(xmin * width), int(ymin * height), int(xmax * width), int(ymax * height))


def pad_box(box: PixelBox, width: int, height: int, pad: int) -> PixelBox:
    """The reference region: the box grown by up to `pad` px per side, clamped to the image."""
    return PixelBox(
        box.x0 - min(pad, box.x0),
        box.y0 - min(pad, box.y0),
        box.x1 + min(pad, width - box.x1),
        box.y1 + min(pad, height - box.y1),
    )


def extend_box(box: PixelBox, width: int, height: int, ratio: float, rng: SampleRng) -> PixelBox:
    """Each side moves outward by randint(0, int(ratio * free space on that side)); order left, up, right, down."""
    x0 = box.x0 - rng.randint(0, int(ratio * box.x0))
    y0 = box.y0 - rng.randint(0, int(ratio * box.y0))
    x1 = box.x1 + rng.randint(0, int(ratio * (width - box.x1)))
    y1 = box.y1 + rng.randint(0, int(ratio * (height - box.y1)))
    return PixelBox(x0, y0, x1, y1)


def square_crop(ext: PixelBox, width: int, height: int, shrink_ratio: float, rng: SampleRng) -> PixelBox:
    """A square window holding the extended box, shrunk by up to `shrink_ratio` of its smallest margin.

    As in PbE, when no square window along the long axis can hold the extended box (or the image is
    already square) the whole image is returned; it is later resized without keeping its aspect.
    """
    whole = PixelBox(0, 0, width, height)
    if width > height:
        lo = max(ext.x1 - height, 0)
        hi = min(ext.x0 + height, width) - height
        if hi <= lo:  # PbE's test is `<=`: a single valid position also falls back to the whole image
            return whole
        pos = rng.randint(lo, hi)
        free = min(ext.y0, ext.x0 - pos, pos + height - ext.x1, height - ext.y1)
        s = rng.randint(0, int(shrink_ratio * free))
        return PixelBox(pos + s, s, pos + height - s, height - s)
    if width < height:
        lo = max(ext.y1 - width, 0)
        hi = min(ext.y0 + width, height) - width
        if hi <= lo:
            return whole
        pos = rng.randint(lo, hi)
        free = min(ext.y0 - pos, ext.x0, width - ext.x1, pos + width - ext.y1)
        s = rng.randint(0, int(shrink_ratio * free))
        return PixelBox(s, pos + s, width - s, pos + width - s)
    return whole


def scale_box(box: PixelBox, sx: float, sy: float) -> PixelBox:
    """Map a full-resolution box onto an image decoded at a reduced scale (never empty)."""
    x0, y0 = round(box.x0 * sx), round(box.y0 * sy)
    x1, y1 = max(round(box.x1 * sx), x0 + 1), max(round(box.y1 * sy), y0 + 1)
    return PixelBox(x0, y0, x1, y1)
