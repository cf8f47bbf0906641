"""Fixtures of the training tests: the tiny Paint-by-Example preset, written once per session."""

from __future__ import annotations

import os

import pytest
import torch

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "paint-by-example"
)

# Two cores: more intra-op threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_dir(models_root) -> str:
    from doodleflow.training.pbe.presets import save_tiny_pbe

    return save_tiny_pbe(models_root, seed=0)


@pytest.fixture
def tiny_model(tiny_dir):
    from doodleflow.training.pbe.model import load_pbe_dir

    return load_pbe_dir(tiny_dir)


def example_triple(k: int):
    """The upstream example k as (image, mask, reference) PIL images."""
    from PIL import Image

    return (
        Image.open(os.path.join(FIXTURES, "image", f"example_{k}.png")),
        Image.open(os.path.join(FIXTURES, "mask", f"example_{k}.png")),
        Image.open(os.path.join(FIXTURES, "reference", f"example_{k}.jpg")),
    )


@pytest.fixture(scope="session")
def ray_cluster(ray_local):
    """The session's one local Ray (tests/conftest.py `ray_local`), under the name these files use."""
    yield
