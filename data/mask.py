"""The repaint mask of a sample: PbE's Bezier shape or the extended box's rectangle.

Our stored convention is 255 = region to repaint, 0 = keep (the inverse of PbE's `1 = keep`);
`training/` converts once, in one tested function.
"""

from __future__ import annotations

import cv2
import numpy as np
from doodleflow.data.geometry import PixelBox
from doodleflow.data.imageio import halvings, resize
from doodleflow.data.rng import SampleRng
from PIL import Image, ImageDraw

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
    clean: list[Point] = []
    for p0, p1, p2 in bezier_control_points(box, ext):
        seen_x: set[float] = set()
        seen_y: set[float] = set()
        for t in BEZIER_TS:
            x, y = _quadratic(p0, p1, p2, t)
            # PbE skips a point whose x or y was already produced on the same curve.
            if x in seen_x or y in seen_y:
                continue
            clean.append((x, y))
            seen_x.add(x)
            seen_y.add(y)
    d = _jitter(rng, jitter, 2 * len(clean))  # x, y, x, y, ...: the order PbE draws them in
    return [(x + d[2 * i], y + d[2 * i + 1]) for i, (x, y) in enumerate(clean)]


def _jitter(rng: SampleRng, jitter: int, n: int) -> list[int]:
    """n draws of randint(-jitter, jitter). On a plain SampleRng one vectorised call: numpy's bounded
    integers give the same stream drawn one by one or as an array, and ~70 scalar calls cost 0.15 ms."""
    if type(rng) is SampleRng:
        return rng.gen.integers(-jitter, jitter + 1, size=n).tolist()
    return [rng.randint(-jitter, jitter) for _ in range(n)]


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


def output_mask(
    kind: str,
    window: PixelBox,
    scale: tuple[float, float],
    size: tuple[int, int],
    ext: PixelBox,
    polygon: list[Point],
    out: tuple[int, int],
) -> np.ndarray:
    """The hole at output size `out` = (w, h): drawn on the window's canvas (`draw_mask` arguments), then
    resized exactly like the image, so the edge keeps PbE's soft bilinear ramp (it never re-binarizes).

    A rectangle is separable: resizing its column and row profiles and multiplying them gives the
    resized rectangle (to +-1 of rounding) for ~1/10 of the cost of drawing and resizing the canvas.
    """
    if kind == "bezier":
        return resize(draw_mask(kind, window, scale, size, ext, polygon), out)
    k = halvings(size, out)
    xs = _box_profile((ext.x0 - window.x0) * scale[0], (ext.x1 - window.x0) * scale[0], size[0], k, out[0])
    ys = _box_profile((ext.y0 - window.y0) * scale[1], (ext.y1 - window.y0) * scale[1], size[1], k, out[1])
    m = np.zeros((out[1], out[0]), np.uint8)
    m[ys == 255] = xs
    part = np.flatnonzero((ys > 0) & (ys < 255))  # the few rows on the top/bottom ramp
    m[part] = (ys[part, None].astype(np.uint16) * xs + 127) // 255
    return m


def _box_profile(lo: float, hi: float, n: int, k: int, out: int) -> np.ndarray:
    """255 on [round(lo), round(hi)) of n px (draw_mask's rounding), then `resize` along one axis:
    k 2-tap box halvings ((a + b + 1) >> 1, the 2x2 box of a constant-row image) and the bilinear step."""
    p: np.ndarray = np.zeros(n, np.uint16)
    p[max(round(lo), 0) : max(min(round(hi), n), 0)] = 255
    for _ in range(k):
        half = len(p) // 2
        p = (p[0 : 2 * half : 2] + p[1 : 2 * half : 2] + 1) >> 1
    row = p.astype(np.uint8)[None, :]
    if row.shape[1] != out:
        row = cv2.resize(row, (out, 1), interpolation=cv2.INTER_LINEAR)
    return row[0]
