"""Real dataset versions for the training tests, made with the in-process refresh (no Prefect)."""

from __future__ import annotations

import os

from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.synthetic import make_source


def make_version(root: str, store: str, name: str, n_images: int, seed: int = 0) -> int:
    """Synthetic OpenImages-format source -> a committed dataset version; returns its number."""
    src = os.path.join(root, f"source-{name}")
    make_source(src, n_images, seed=seed, size=(640, 480), boxes_per_image=(1, 1))
    cfg = CurationConfig(seed=seed, samples_per_shard=8, row_group_size=4)
    return refresh_in_process(src, name, store, cfg, run_id=f"test-{name}")["version"]
