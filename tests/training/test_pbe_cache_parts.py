"""The latent cache follows the data: a new version encodes only its new parts, on a pool of 2 workers."""

from __future__ import annotations

import os

from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
from doodleflow.data.refresh import commit_version, diff_with_latest
from doodleflow.data.shard import build_unit
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source
from doodleflow.data.units import make_units, new_plan_folder
from doodleflow.training.pbe.cache import entries, find_cache
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.ray_cache import build_cache

CFG = CurationConfig(seed=0, samples_per_shard=4, row_group_size=4)


def refresh(src: str, store: str, name: str) -> int:
    ds = DatasetStore(store, name)
    plan = plan_inputs(src, None, CFG)
    diff = diff_with_latest(ds, plan)
    stats = [
        build_unit(u, CFG, store, name) for u in make_units(diff.new_jobs, CFG, ds.fs, new_plan_folder(ds))
    ]
    return commit_version(ds, CFG, plan, diff, stats, f"test-{name}", src)["version"]


def test_a_new_version_encodes_only_its_new_part(tmp_path, tiny_dir, models_root, ray_cluster):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    make_source(src, 8, seed=0, size=(320, 240), boxes_per_image=(1, 1))
    v1 = refresh(src, store, "grow")
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        data={"resolution": 64},
        run={"store": store, "dataset": "grow", "version": v1},
    )
    logs: list[str] = []
    first = build_cache(cfg, log=logs.append, workers=2)
    assert first["rows"] == 8 and len(first["parts"]) == 2
    assert any("encoding 2 part(s) with 2 worker(s)" in m for m in logs)
    mtimes = {p: os.path.getmtime(p) for p in first["parts"]}

    make_source(src, 3, seed=1, salt="new", size=(320, 240), boxes_per_image=(1, 1))  # 3 new images
    v2 = refresh(src, store, "grow")
    cfg2 = cfg.replace(run={"version": v2})
    assert find_cache(cfg2) is None
    logs.clear()
    second = build_cache(cfg2, log=logs.append, workers=2)
    assert second["rows"] == DatasetStore(store, "grow").manifest(v2)["rows_total"] == 11
    assert any("1 of 3 part(s) encoded, the rest reused" in m for m in logs), logs
    reused = [p for p in second["parts"] if p in mtimes]
    assert len(reused) == 2 and all(os.path.getmtime(p) == mtimes[p] for p in reused)
    new = [e for e in entries(cfg2) if e.dst not in mtimes]
    assert len(new) == 1 and os.path.exists(new[0].dst)
    # v1's cache is still complete and untouched.
    assert find_cache(cfg) == first
