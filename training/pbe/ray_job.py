"""Ray Train entry for Paint-by-Example: the dataset stream, the per-worker function, the launch.

The only module of training/pbe that imports Ray. The driver resolves the dataset version and the
run directory, refuses to overwrite an existing run unless asked to resume, and starts a
`TorchTrainer`: DDP over NCCL on GPUs, gloo on CPU. Workers resume from the run's latest checkpoint
in the store, which is also how `FailureConfig` restarts continue after a worker dies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from doodleflow.training.common import stop
from doodleflow.training.common.logs import log as _log
from doodleflow.training.common.plan import dataset_manifest, open_run, pin
from doodleflow.training.common.ray_utils import (
    cpus_per_worker,
    init_ray,
    ray_run_config,
)
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.common.tracking import make_tracker, tracking_config
from doodleflow.training.common.watched_fit import fit_watched
from doodleflow.training.memplan.record import plan_for_job
from doodleflow.training.pbe.cache import find_cache
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.model import resolve_source_dir
from doodleflow.training.pbe.ray_cache import build_cache
from doodleflow.training.pbe.stream import StreamPlan, plan_stream, resume_point
from doodleflow.training.registry.bases import record_run_bases

FAMILY = "pbe"
DATASET_KIND = "pbe-triples"


@dataclass
class JobPlan:
    cfg: TrainConfig  # with the dataset version and model locations resolved
    run: RunDir
    parts: list[str]
    cache: dict | None  # the latent cache manifest used, if any
    stream: StreamPlan  # the epochs this launch streams (training/pbe/stream.py)
    counts: dict  # train / held-out samples and images (reported by `train --json`)


def clip_image_size(cfg: TrainConfig) -> int:
    """The CLIP tower's input size, read from its config file (the driver never loads weights)."""
    src = cfg.model.source
    path = (
        os.path.join(src.clip, "config.json")
        if src.kind == "sd1"
        else os.path.join(resolve_source_dir(src), "image_encoder", "config.json")
    )
    with open(path) as f:
        c = json.load(f)
    return int(c.get("vision_config", c).get("image_size", 224))


def plan_job(cfg: TrainConfig, log=_log) -> JobPlan:
    """Pin the config, run the shared checks (training/common/plan.py), find the latent cache."""
    cfg = pin(cfg.check())
    ds, manifest = dataset_manifest(cfg, DATASET_KIND)
    run = open_run(cfg, FAMILY, int(manifest["rows_total"]), log)
    record_run_bases(run, cfg.to_dict())  # a checkpoint loaded by path is verified against these
    cache = None
    if cfg.data.latent_cache != "off":
        cache = find_cache(cfg)
        log(f"latent cache: {cache['rows']} samples" if cache else "latent cache: none for this version")
    start_epoch, steps_left = resume_point(run, cfg.run.steps)
    stream, counts = plan_stream(cfg, ds, manifest, cache, start_epoch, steps_left, clip_image_size(cfg), log)
    return JobPlan(cfg, run, [ds.uri(p) for p in ds.part_paths(cfg.run.version)], cache, stream, counts)


def train_dataset(plan: JobPlan):
    """The training stream: every epoch the run needs, held-out images left out, one sample per image
    per epoch by default (training/pbe/stream.py); decoded from the Parquet parts or the latent cache."""
    from doodleflow.training.pbe.stream import epoch_stream

    return epoch_stream(plan.stream)


def train_loop_per_worker(config: dict) -> None:
    """What each Ray Train worker runs: build the model, wrap it in DDP, stream its shard, train."""
    import ray.train
    import ray.train.torch
    from doodleflow.training.common.loop import WorkerContext, train
    from doodleflow.training.pbe.cache import encoded_batch
    from doodleflow.training.pbe.data import pixel_batch
    from doodleflow.training.pbe.model import load_model
    from doodleflow.training.pbe.previews import pbe_previews
    from doodleflow.training.pbe.stream import stream_epochs
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

    micro = cfg.batch_plan(world).micro_batch
    epoch_batches = stream_epochs(
        shard, micro, cfg.data.shuffle_buffer, cfg.run.seed, rank, lambda b: to_batch(b, device)
    )

    def report(metrics: dict) -> None:
        ray.train.report({k: v for k, v in metrics.items() if v is not None})

    run = RunDir(cfg.run.store, FAMILY, cfg.run_id())
    log = _log if rank == 0 else (lambda msg: None)
    params = {**config["train"], "batch": cfg.batch_plan(world).params()}
    if config.get("memory_plan"):
        params["memory_plan"] = config["memory_plan"]
    tracker = make_tracker(config.get("tracking"), FAMILY, run.run_id, params) if rank == 0 else None
    samples = pbe_previews(trainer, run, tracker) if rank == 0 else None
    train(
        trainer,
        run,
        epoch_batches,
        WorkerContext(rank, world, report, log, tracker=tracker, previews=samples),
    )


def launch(cfg: TrainConfig, log=_log) -> dict:
    """Run the job to `cfg.run.steps` and return its result.json (checkpoint URI, steps, final loss...).
    Where it runs and how often a worker group may restart: `cfg.launch`."""
    import ray
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    ray_address, max_failures = cfg.launch.ray_address, cfg.launch.max_failures
    if cfg.data.latent_cache == "on":
        build_cache(cfg, ray_address, log)
    plan = plan_job(cfg, log)
    stop.refuse_start(plan.run.run_id)  # a stop asked for before the job started: nothing to train
    where = init_ray(ray_address)
    memory = plan_for_job(plan.cfg, plan.run, log, ray.cluster_resources)
    workers = plan.cfg.run.workers
    res = {"CPU": cpus_per_worker(workers, plan.cfg.run.use_gpu)} if workers > 0 else None
    log(
        f"run {plan.run.run_id}: {workers or 'local-mode'} worker(s) {res or ''} on Ray ({where}); "
        f"{len(plan.parts)} Parquet part(s) of {plan.cfg.run.dataset} v{plan.cfg.run.version}"
        f"{', trained from its latent cache' if plan.cache else ''}; {plan.cfg.batch_plan().describe()}"
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "train": plan.cfg.to_dict(),
            "cache": plan.cache,
            "tracking": tracking_config(plan.cfg.run.store),
            "memory_plan": memory,
        },
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=plan.cfg.run.use_gpu, resources_per_worker=res
        ),
        run_config=ray_run_config(plan.cfg.run.store, plan.run.run_id, max_failures),
        datasets={"train": train_dataset(plan)},
    )
    result = fit_watched(trainer, plan.run, plan.cfg.run.steps, log)
    return {**result, **plan.counts}
