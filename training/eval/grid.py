"""Sample grid PNG: one row per example (e.g. source | reference-or-prompt | output | target).

Image cells are letterboxed onto white square tiles; a string cell (a PhotoDoodle instruction) is
drawn as wrapped text on a white tile. Labels form a header row. PIL only, default font.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Cell = Image.Image | np.ndarray | str


@dataclass(frozen=True)
class GridLayout:
    """Pixel geometry of the grid; `size()` gives the PNG size for a given number of rows/cols."""

    tile: int = 256
    pad: int = 4
    header: int = 24
    font_size: int = 14

    def size(self, n_rows: int, n_cols: int) -> tuple[int, int]:
        width = n_cols * (self.tile + self.pad) + self.pad
        height = self.header + n_rows * (self.tile + self.pad) + self.pad
        return width, height


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:  # Pillow >= 10.1 ships a scalable default font
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _wrap(text: str, draw: ImageDraw.ImageDraw, font, max_width: int) -> list[str]:
    """Greedy word wrap by rendered width; a word longer than a line is split by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=font) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:
                if draw.textlength(line + ch, font=font) > max_width and line:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def text_tile(text: str, tile: int, font_size: int = 14) -> Image.Image:
    """`text` wrapped onto a white `tile` x `tile` image (lines past the bottom are dropped)."""
    img = Image.new("RGB", (tile, tile), "white")
    draw = ImageDraw.Draw(img)
    font = _font(font_size)
    margin, line_h = 6, font_size + 4
    for i, line in enumerate(_wrap(text, draw, font, tile - 2 * margin)):
        y = margin + i * line_h
        if y + line_h > tile:
            break
        draw.text((margin, y), line, fill="black", font=font)
    return img


def image_tile(image: Image.Image | np.ndarray, tile: int) -> Image.Image:
    """`image` scaled to fit a white `tile` x `tile` square, aspect kept, centred."""
    img = Image.fromarray(np.asarray(image)) if isinstance(image, np.ndarray) else image
    img = img.convert("RGB")
    scale = tile / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    out = Image.new("RGB", (tile, tile), "white")
    out.paste(img.resize((w, h), Image.Resampling.BICUBIC), ((tile - w) // 2, (tile - h) // 2))
    return out


def sample_grid(
    rows: list[list[Cell]], labels: list[str], path: str, layout: GridLayout | None = None
) -> str:
    """Write the grid of `rows` (each as long as `labels`) to `path` as PNG; returns `path`."""
    canvas = grid_image(rows, labels, layout)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def grid_image(rows: list[list[Cell]], labels: list[str], layout: GridLayout | None = None) -> Image.Image:
    """The grid of `rows` (each as long as `labels`) under a header row of `labels`."""
    layout = layout or GridLayout()
    if any(len(r) != len(labels) for r in rows):
        raise ValueError(f"every row needs {len(labels)} cells (one per label)")
    # Light grey gutters so white tiles stay distinguishable.
    canvas = Image.new("RGB", layout.size(len(rows), len(labels)), (225, 225, 225))
    draw = ImageDraw.Draw(canvas)
    font = _font(layout.font_size)
    step = layout.tile + layout.pad
    for j, label in enumerate(labels):
        draw.text((layout.pad + j * step + 2, 4), label, fill="black", font=font)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            tile = (
                text_tile(cell, layout.tile, layout.font_size)
                if isinstance(cell, str)
                else image_tile(cell, layout.tile)
            )
            canvas.paste(tile, (layout.pad + j * step, layout.header + layout.pad + i * step))
    return canvas
