"""Paint-by-Example's hooks (training/family.py:FamilyHooks): what the shared launcher
(training/runtime/launch.py) and the registry ask of this family, each delegating to the module that
does it. The worker's imports (torch, diffusers, the model) stay inside the hooks that need them."""

from __future__ import annotations

import json

from doodleflow.data.fsutil import filesystem, join
from doodleflow.training.family import WorkerEnv, WorkerParts
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.job import FAMILY, PbEPlan, plan_job


def config_class() -> type:
    return TrainConfig


def run_family(cfg: TrainConfig) -> str:
    return FAMILY


def plan(cfg: TrainConfig, log) -> PbEPlan:
    """The latent cache first when asked for (`--latent-cache on`: encoded on Ray, training/pbe/ray_cache.py),
    then the job plan (training/pbe/job.py)."""
    if cfg.data.latent_cache == "on":
        from doodleflow.training.pbe.ray_cache import build_cache

        build_cache(cfg, cfg.launch.ray_address, log)
    return plan_job(cfg, log)


def scaling(cfg: TrainConfig) -> tuple[int, dict | None]:
    """`--workers 0`: Ray Train's local mode (no worker group), no resources asked."""
    from doodleflow.training.runtime.ray_utils import cpus_per_worker

    workers = cfg.run.workers
    return workers, ({"CPU": cpus_per_worker(workers, cfg.run.use_gpu)} if workers > 0 else None)


def describe(plan: PbEPlan) -> str:
    cfg = plan.cfg
    cached = ", trained from its latent cache" if plan.cache else ""
    return f"{len(plan.parts)} Parquet part(s) of {cfg.run.dataset} v{cfg.run.version}{cached}"


def worker_config(plan: PbEPlan, resources: dict | None) -> dict:
    return {"cache": plan.cache}


def dataset(plan: PbEPlan):
    """Every epoch the run needs, held-out images left out, one sample per image per epoch by default
    (training/pbe/stream.py); decoded from the Parquet parts or the latent cache."""
    from doodleflow.training.pbe.stream import epoch_stream

    return epoch_stream(plan.stream)


def worker(cfg: TrainConfig, env: WorkerEnv) -> WorkerParts:
    """The PbE model and trainer; this worker's shard of the stream as batches (encoded by the
    trainer, or read encoded from the latent cache)."""
    from doodleflow.training.core.epochs import consumed
    from doodleflow.training.pbe.cache import encoded_batch
    from doodleflow.training.pbe.data import pixel_batch
    from doodleflow.training.pbe.model import load_model
    from doodleflow.training.pbe.previews import pbe_previews
    from doodleflow.training.pbe.stream import stream_epochs
    from doodleflow.training.pbe.trainer import PbETrainer

    device = env.device
    trainer = PbETrainer(load_model(cfg.model.source), cfg, device, env.rank, env.wrap)
    shard = env.shard()
    to_batch = (
        encoded_batch
        if env.config.get("cache")
        else lambda b, dev: pixel_batch(b, dev, cfg.data.binarize_mask)
    )

    micro = cfg.batch_plan(env.world).micro_batch
    epoch_batches = stream_epochs(
        shard, micro, cfg.data.shuffle_buffer, cfg.run.seed, env.rank, lambda b: to_batch(b, device),
        consumed(trainer, env.world),
    )  # fmt: skip
    return WorkerParts(
        trainer,
        epochs=lambda: epoch_batches,
        previews=lambda run, tracker: pbe_previews(trainer, run, tracker),
    )


def base_dirs(kind: str, uri: str) -> list[str]:
    """A checkpoint's run config names its base (its state.json, training/runs/rundir.py); a
    diffusers directory has none and is self-contained: all of it is the artifact."""
    from doodleflow.training.pbe.model import frozen_base_dirs

    fs, path = filesystem(uri)
    state = join(path, "state.json")
    return frozen_base_dirs(json.loads(fs.cat_file(state))["config"]) if fs.exists(state) else []
