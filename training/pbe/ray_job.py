"""Ray Train entry for Paint-by-Example: the dataset stream, the per-worker function, the launch.

The only module of training/pbe that imports Ray. The driver resolves the dataset version and the
run directory, refuses to overwrite an existing run unless asked to resume, and starts a
`TorchTrainer`: DDP over NCCL on GPUs, gloo on CPU. Workers resume from the run's latest checkpoint
in the store, which is also how `FailureConfig` restarts continue after a worker dies.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import ConfigError
from doodleflow.training.common.logs import log as _log
from doodleflow.training.common.ray_utils import (
    arrow_filesystem,
    cpus_per_worker,
    init_ray,
    ray_run_config,
    shard_epochs,
)
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.common.tracking import make_tracker, tracking_config
from doodleflow.training.pbe.config import TrainConfig

FAMILY = "pbe"


@dataclass
class JobPlan:
    cfg: TrainConfig  # with the dataset version and model locations resolved
    run: RunDir
    parts: list[str]
    cache: dict | None  # the latent cache manifest used, if any


def clip_image_size(cfg: TrainConfig) -> int:
    """The CLIP tower's input size, read from its config file (the driver never loads weights)."""
    from doodleflow.training.pbe.model import resolve_source_dir

    src = cfg.model.source
    path = (
        os.path.join(src.clip, "config.json")
        if src.kind == "sd1"
        else os.path.join(resolve_source_dir(src), "image_encoder", "config.json")
    )
    with open(path) as f:
        c = json.load(f)
    return int(c.get("vision_config", c).get("image_size", 224))


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Pin what "latest" and defaults mean now: the dataset version and the tiny preset's root."""
    from doodleflow.training.pbe.model import default_tiny_root

    version = DatasetStore(cfg.run.store, cfg.run.dataset).resolve(cfg.run.version or None)
    src = cfg.model.source
    tiny_root = os.path.abspath(src.tiny_root or default_tiny_root()) if src.kind == "tiny" else None
    return cfg.replace(
        run={"version": version}, model={"source": dataclasses.replace(src, tiny_root=tiny_root)}
    )


def _check_run(cfg: TrainConfig, run: RunDir, log) -> None:
    latest = run.latest()
    if latest is not None and not cfg.run.resume:
        raise ConfigError(
            f"run {run.run_id} already has checkpoints (latest step {latest}) in {run.uri()}: "
            "pass --resume to continue it, or --run-name for a new run"
        )
    if latest is not None and latest > cfg.run.steps:
        raise ConfigError(f"run {run.run_id} is already at step {latest}, past --steps {cfg.run.steps}")
    if cfg.run.resume:
        log(
            f"run {run.run_id}: "
            + (f"resuming from step {latest}" if latest is not None else "nothing to resume")
        )
    if run.read_json("run.json") is None:
        dataset = {"name": cfg.run.dataset, "version": cfg.run.version, "store": cfg.run.store}
        run.write_json("run.json", {"run_id": run.run_id, "config": cfg.to_dict(), "dataset": dataset})


def plan_job(cfg: TrainConfig, log=_log) -> JobPlan:
    """Resolve the config, check the run directory (fresh start vs resume), find the latent cache."""
    cfg = resolve(cfg)
    run = RunDir(cfg.run.store, FAMILY, cfg.run_id())
    _check_run(cfg, run, log)
    cache = None
    if cfg.data.latent_cache != "off":
        from doodleflow.training.pbe.cache import find_cache

        cache = find_cache(cfg)
        log(f"latent cache: {cache['rows']} samples" if cache else "latent cache: none for this version")
    ds = DatasetStore(cfg.run.store, cfg.run.dataset)
    return JobPlan(cfg, run, [ds.uri(p) for p in ds.part_paths(cfg.run.version)], cache)


def train_dataset(plan: JobPlan):
    """The training stream: the version's Parquet decoded to uint8 arrays, or its latent cache."""
    import ray.data
    from doodleflow.training.pbe.cache import FIELDS, decode_cached
    from doodleflow.training.pbe.data import SAMPLE_COLUMNS, decode_rows

    ray.data.DataContext.get_current().enable_progress_bars = False  # per-epoch bars flood the logs
    if plan.cache:
        fs, paths = arrow_filesystem(plan.cfg.run.store, plan.cache["parts"])
        ds = ray.data.read_parquet(paths, filesystem=fs, columns=list(FIELDS))
        return ds.map_batches(
            decode_cached, batch_format="numpy", batch_size=32, fn_kwargs={"manifest": plan.cache}
        )
    fs, paths = arrow_filesystem(plan.cfg.run.store, plan.parts)
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=SAMPLE_COLUMNS)
    return ds.map_batches(
        decode_rows,
        batch_format="numpy",
        batch_size=8,
        fn_kwargs={"resolution": plan.cfg.data.resolution, "ref_size": clip_image_size(plan.cfg)},
    )


def train_loop_per_worker(config: dict) -> None:
    """What each Ray Train worker runs: build the model, wrap it in DDP, stream its shard, train."""
    import ray.train
    import ray.train.torch
    from doodleflow.training.pbe.cache import encoded_batch
    from doodleflow.training.pbe.data import pixel_batch
    from doodleflow.training.pbe.loop import WorkerContext, train
    from doodleflow.training.pbe.model import load_model
    from doodleflow.training.pbe.trainer import PbETrainer

    cfg = TrainConfig.from_dict(config["train"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    wrap = (lambda m: ray.train.torch.prepare_model(m, move_to_device=False)) if world > 1 else None
    trainer = PbETrainer(load_model(cfg.model.source), cfg, device, rank, wrap)
    shard = ray.train.get_dataset_shard("train")
    to_batch = (
        encoded_batch if config.get("cache") else lambda b, dev: pixel_batch(b, dev, cfg.data.binarize_mask)
    )

    epoch_batches = shard_epochs(shard, cfg, rank, lambda b: to_batch(b, device))

    def report(metrics: dict) -> None:
        ray.train.report({k: v for k, v in metrics.items() if v is not None})

    run = RunDir(cfg.run.store, FAMILY, cfg.run_id())
    log = _log if rank == 0 else (lambda msg: None)
    tracker = make_tracker(config.get("tracking"), FAMILY, run.run_id, config["train"]) if rank == 0 else None
    train(trainer, run, epoch_batches, WorkerContext(rank, world, report, log, tracker=tracker))


def launch(cfg: TrainConfig, ray_address: str | None = None, max_failures: int = 2, log=_log) -> dict:
    """Run the job to `cfg.run.steps` and return its result.json (checkpoint URI, steps, final loss...)."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    if cfg.data.latent_cache == "build":
        from doodleflow.training.pbe.ray_cache import build_cache

        build_cache(cfg, ray_address, log)
    plan = plan_job(cfg, log)
    where = init_ray(ray_address)
    workers = plan.cfg.run.workers
    res = {"CPU": cpus_per_worker(workers, plan.cfg.run.use_gpu)} if workers > 0 else None
    log(
        f"run {plan.run.run_id}: {workers or 'local-mode'} worker(s) {res or ''} on Ray ({where}); "
        f"{len(plan.parts)} Parquet part(s) of {plan.cfg.run.dataset} v{plan.cfg.run.version}"
        f"{', trained from its latent cache' if plan.cache else ''}"
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "train": plan.cfg.to_dict(),
            "cache": plan.cache,
            "tracking": tracking_config(plan.cfg.run.store),
        },
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=plan.cfg.run.use_gpu, resources_per_worker=res
        ),
        run_config=ray_run_config(plan.cfg.run.store, plan.run.run_id, max_failures),
        datasets={"train": train_dataset(plan)},
    )
    trainer.fit()
    result = plan.run.read_json("result.json")
    if result is None or result["steps"] != plan.cfg.run.steps:
        raise RuntimeError(f"run {plan.run.run_id} ended without reaching step {plan.cfg.run.steps}")
    return result
