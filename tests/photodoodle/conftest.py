"""Fixtures of the PhotoDoodle tests: the tiny FLUX preset written once per session, small pair sets."""

from __future__ import annotations

import os

import pytest
import torch

# One intra-op thread: tiny tensors gain nothing from more, and on 2 shared cores extra
# OpenMP threads spin against Ray workers and other processes.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("pd-models"))


@pytest.fixture(scope="session")
def tiny_dir(models_root) -> str:
    from doodleflow.training.photodoodle.presets import save_tiny_flux

    return save_tiny_flux(models_root, seed=0)


@pytest.fixture
def tiny_model(tiny_dir):
    from doodleflow.training.photodoodle.config import ModelSource
    from doodleflow.training.photodoodle.model import load_model

    return load_model(ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir)))
