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


def four_rows(root: str) -> dict:
    """Four real rows of a dataset version made by the curation library, decoded at 128 px."""
    from doodleflow.data.store import DatasetStore
    from doodleflow.training.pbe.data import decode_rows

    store = os.path.join(root, "store")
    v = make_version(root, store, "four", n_images=4)
    t = DatasetStore(store, "four").read_table(v, columns=["target_jpeg", "mask_png", "reference_jpeg"])
    assert t.num_rows == 4
    return decode_rows(t.to_pydict(), resolution=128, ref_size=224)
