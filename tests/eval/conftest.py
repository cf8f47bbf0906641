"""Fixtures of the metric tests: tiny random CLIP and Inception models, written to temp dirs once per
session and loaded back through the same from_pretrained path as real weights."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_inception_dir(tmp_path_factory) -> str:
    from training.eval.inception import tiny_inception

    return tiny_inception(str(tmp_path_factory.mktemp("inception")), seed=0)


@pytest.fixture(scope="session")
def inception(tiny_inception_dir):
    from training.eval.inception import InceptionV3FID

    return InceptionV3FID.from_pretrained(tiny_inception_dir)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> str:
    from training.eval.clip import tiny_clip

    return tiny_clip(str(tmp_path_factory.mktemp("clip")), seed=0)


@pytest.fixture(scope="session")
def clip(tiny_clip_dir):
    from training.eval.clip import load_clip

    return load_clip(tiny_clip_dir)


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
