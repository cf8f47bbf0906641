"""Real dataset versions for the training tests, made with the curation library (no Prefect)."""

from __future__ import annotations

import os

from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import make_units, plan_inputs
from doodleflow.data.refresh import commit_version, diff_with_latest
from doodleflow.data.shard import build_unit
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source


def make_version(root: str, store: str, name: str, n_images: int, seed: int = 0) -> int:
    """Synthetic OpenImages-format source -> a committed dataset version; returns its number."""
    src = os.path.join(root, f"source-{name}")
    make_source(src, n_images, seed=seed, size=(640, 480), boxes_per_image=(1, 1))
    cfg = CurationConfig(seed=seed, samples_per_shard=8, row_group_size=4)
    ds = DatasetStore(store, name)
    plan = plan_inputs(src, None, cfg)
    diff = diff_with_latest(ds, plan)
    stats = [build_unit(u, cfg, store, name) for u in make_units(diff.new_jobs, cfg)]
    return commit_version(ds, cfg, plan, diff, stats, f"test-{name}", src)["version"]
