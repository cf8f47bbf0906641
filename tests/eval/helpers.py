"""Synthetic images for the metric tests."""

from __future__ import annotations

import numpy as np


def random_images(n: int, seed: int, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    """n uint8 RGB images of smooth random colour fields (closer to photos than white noise)."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.float64)
        up = np.kron(coarse, np.ones((h // 4 + 1, w // 4 + 1, 1)))[:h, :w]
        out.append(np.clip(up + rng.normal(0, 10, up.shape), 0, 255).astype(np.uint8))
    return out
