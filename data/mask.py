"""The repaint mask of a sample: PbE's Bezier shape or the extended box's rectangle.

Our stored convention is 255 = region to repaint, 0 = keep (the inverse of PbE's `1 = keep`);
`training/` converts once, in one tested function.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from data.geometry import PixelBox
from data.rng import SampleRng

Point = tuple[float, float]

# PbE samples each side's curve at t = 0.05 * i for i = 1..18 (the last 10% is never sampled).
BEZIER_TS = [0.05 * i for i in range(1, 19)]


def _quadratic(p0: Point, p1: Point, p2: Point, t: float) -> Point:
    """The `bezier` package's Horner-form evaluation, operation for operation: PbE's skip-repeated-
    coordinate rule compares floats exactly, so the rounding must match too."""
    s = 1.0 - t

    def coord(a: float, b: float, c: float) -> float:
        return (s * a + 2.0 * t * b) * s + t * t * c

    return (coord(p0[0], p1[0], p2[0]), coord(p0[1], p1[1], p2[1]))


def bezier_control_points(box: PixelBox, ext: PixelBox) -> list[tuple[Point, Point, Point]]:
    """Top, right, bottom, left curves: box corners as ends, the side's midpoint pushed to `ext`."""
    mx, my = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    return [
        ((box.x0, box.y0), (mx, ext.y0), (box.x1, box.y0)),
        ((box.x1, box.y0), (ext.x1, my), (box.x1, box.y1)),
        ((box.x1, box.y1), (mx, ext.y1), (box.x0, box.y1)),
        ((box.x0, box.y1), (ext.x0, my), (box.x0, box.y0)),
    ]


def bezier_polygon(box: PixelBox, ext: PixelBox, jitter: int, rng: SampleRng) -> list[Point]:
    """The jittered polygon of PbE's arbitrary-shape mask, in full-resolution pixels."""
    points: list[Point] = []
    for p0, p1, p2 in bezier_control_points(box, ext):
        seen_x: list[float] = []
        seen_y: list[float] = []
        for t in BEZIER_TS:
            x, y = _quadratic(p0, p1, p2, t)
            # PbE skips a point whose x or y was already produced on the same curve.
            if x in seen_x or y in seen_y:
                continue
            points.append((x + rng.randint(-jitter, jitter), y + rng.randint(-jitter, jitter)))
            seen_x.append(x)
            seen_y.append(y)
    return points


def draw_mask(
    kind: str,
    window: PixelBox,
    scale: tuple[float, float],
    size: tuple[int, int],
    ext: PixelBox,
    polygon: list[Point],
) -> np.ndarray:
    """Rasterise the hole (255) inside `window`, on a canvas of `size` = (w, h) at `scale` = (sx, sy)."""
    sx, sy = scale
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "bezier":
        pts = [((x - window.x0) * sx, (y - window.y0) * sy) for x, y in polygon]
        draw.polygon(pts, fill=255)
    else:
        x0, y0 = (ext.x0 - window.x0) * sx, (ext.y0 - window.y0) * sy
        x1, y1 = (ext.x1 - window.x0) * sx, (ext.y1 - window.y0) * sy
        # numpy slicing semantics of PbE's `mask[y0:y1, x0:x1] = 1`: end-exclusive, hence the -1.
        if x1 > x0 and y1 > y0:
            draw.rectangle([round(x0), round(y0), round(x1) - 1, round(y1) - 1], fill=255)
    return np.asarray(canvas)
