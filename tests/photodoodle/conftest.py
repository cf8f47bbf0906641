"""Fixtures of the PhotoDoodle tests: the tiny FLUX preset written once per session, small pair sets."""

from __future__ import annotations

import os

import pytest
import torch

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "photodoodle"
)
PHOTO = os.path.join(FIXTURES, "1.png")

# Two cores: more intra-op threads than cores only adds contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("pd-models"))


@pytest.fixture(scope="session")
def tiny_dir(models_root) -> str:
    from training.photodoodle.presets import save_tiny_flux

    return save_tiny_flux(models_root, seed=0)


@pytest.fixture
def tiny_model(tiny_dir):
    from training.photodoodle.config import ModelSource
    from training.photodoodle.model import load_model

    return load_model(ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir)))
