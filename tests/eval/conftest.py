"""Fixtures of the metric tests: tiny random CLIP and Inception models, written to temp dirs once per
session and loaded back through the same from_pretrained path as real weights."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_inception_dir(tmp_path_factory) -> str:
    from doodleflow.training.eval.inception import tiny_inception

    return tiny_inception(str(tmp_path_factory.mktemp("inception")), seed=0)


@pytest.fixture(scope="session")
def inception(tiny_inception_dir):
    from doodleflow.training.eval.inception import InceptionV3FID

    return InceptionV3FID.from_pretrained(tiny_inception_dir)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> str:
    from doodleflow.training.eval.clip import tiny_clip

    return tiny_clip(str(tmp_path_factory.mktemp("clip")), seed=0)


@pytest.fixture(scope="session")
def clip(tiny_clip_dir):
    from doodleflow.training.eval.clip import load_clip

    return load_clip(tiny_clip_dir)
