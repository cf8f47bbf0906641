"""sample_grid: PNG size from the layout; text cells are rendered (not blank)."""

from __future__ import annotations

import numpy as np
from doodleflow.training.eval.grid import GridLayout, sample_grid, text_tile
from PIL import Image


def test_grid_png_size_and_text_cell(tmp_path):
    layout = GridLayout(tile=64, pad=2, header=16)
    red = Image.new("RGB", (80, 40), (255, 0, 0))
    arr = np.zeros((32, 32, 3), np.uint8)
    rows = [[red, "add a hat to the cat please", arr, red], [arr, red, red, "x"]]
    path = sample_grid(
        rows, ["source", "prompt", "output", "target"], str(tmp_path / "g" / "grid.png"), layout
    )
    img = Image.open(path)
    assert img.format == "PNG"
    assert img.size == (4 * 66 + 2, 16 + 2 * 66 + 2)
    # The text cell (row 0, col 1) holds dark pixels; a white tile would not.
    cell = np.asarray(img.convert("L"))[16 + 2 : 16 + 2 + 64, 2 + 66 : 2 + 66 + 64]
    assert (cell < 128).sum() > 20
    # The wide image is letterboxed: the top rows of its tile stay white.
    first = np.asarray(img)[16 + 2, 2 : 2 + 64]
    assert (first == 255).all()


def test_long_words_wrap_within_the_tile():
    tile = text_tile("a" * 200, 64, font_size=10)
    dark = np.asarray(tile.convert("L")) < 128
    assert dark.any(axis=1).sum() > 10  # several lines were drawn
