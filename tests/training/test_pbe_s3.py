"""The run directory, checkpoints, metrics, latent cache and Ray Data's reader on a real S3 API (moto)."""

from __future__ import annotations

import pyarrow.parquet as pq
import torch
from doodleflow.training.pbe.cache import build_latent_cache, find_cache
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.job import plan_job
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.trainer import PbETrainer
from doodleflow.training.runs.metrics import MetricsLog
from doodleflow.training.runs.rundir import RunDir, read_checkpoint_uri
from doodleflow.training.runtime.ray_utils import arrow_filesystem

from .datasets import make_version


def test_pbe_run_artifacts_and_cache_on_s3(bucket, tiny_dir, models_root, tmp_path):
    store = f"{bucket}/store"
    make_version(str(tmp_path), store, "s3pbe", n_images=4)
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        data={"resolution": 128},
        run={"store": store, "dataset": "s3pbe"},
    )
    plan = plan_job(cfg, log=lambda m: None)
    assert plan.cfg.run.version == 1 and all(p.startswith("s3://") for p in plan.parts)
    assert plan.run.read_json("run.json")["dataset"]["store"] == store

    # What Ray Data's read_parquet is given: the store's own fsspec filesystem, bucket-relative paths.
    fs, paths = arrow_filesystem(store, plan.parts)
    assert fs is not None and not paths[0].startswith("s3://")
    assert sum(pq.read_table(p, filesystem=fs, columns=["mask_png"]).num_rows for p in paths) == 4

    model = load_pbe_dir(tiny_dir)
    manifest = build_latent_cache(model, plan.cfg, log=lambda m: None)
    assert (
        manifest["rows"] == 4
        and manifest["parts"][0].startswith("s3://")
        and find_cache(plan.cfg) == manifest
    )

    t = PbETrainer(model, plan.cfg)
    weights, opt, state = t.state_tensors()
    uri = plan.run.write_checkpoint(3, weights, opt, state)
    assert uri.startswith(f"{bucket}/store/runs/pbe/") and plan.run.latest() == 3
    back, _, st = read_checkpoint_uri(uri)
    assert st["step"] == 3 and all(torch.equal(back[k], weights[k]) for k in weights)
    log = MetricsLog(plan.run)
    log.append({"step": 1, "loss": 1.0})
    log.flush()
    assert MetricsLog.load(RunDir(store, "pbe", plan.run.run_id)) == [{"step": 1, "loss": 1.0}]
