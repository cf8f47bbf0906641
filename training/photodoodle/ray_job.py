"""Ray Train entry for PhotoDoodle: the pair stream, the per-worker function, the launch.

The only module of training/photodoodle that imports Ray. One job trains one LoRA (the OmniEditor, or
one artist's EditLoRA) with DDP over its workers: NCCL on GPUs, gloo on CPU. Small artist sets are
encoded once into the store's cache and served from memory; larger sets (OmniEditor) stream through
Ray Data and are encoded per step. Workers resume from the run's latest checkpoint in the store,
which is also how `FailureConfig` restarts continue after a worker dies.
"""

from __future__ import annotations

import torch
from doodleflow.training.common import stop
from doodleflow.training.common.logs import log as train_log
from doodleflow.training.common.ray_utils import (
    arrow_filesystem,
    cpus_per_worker,
    init_ray,
    ray_run_config,
    shard_epochs,
)
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.common.tracking import make_tracker, tracking_config
from doodleflow.training.common.watched_fit import fit_watched
from doodleflow.training.memplan.record import plan_for_job
from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.photodoodle.job import JobPlan, plan_job, publish_run_lora


def pair_stream(plan: JobPlan):
    """The version's Parquet parts as a Ray Data stream of decoded uint8 pairs."""
    import ray.data
    from doodleflow.training.photodoodle.data import PAIR_COLUMNS, decode_pairs

    fs, paths = arrow_filesystem(plan.cfg.run.store, plan.parts)
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=PAIR_COLUMNS)
    kw = {"buckets": plan.cfg.data.buckets(), "artist": plan.artist_filter, "heldout": plan.heldout}
    return ds.map_batches(decode_pairs, batch_format="numpy", batch_size=8, fn_kwargs=kw)


def streamed_epochs(trainer, rank: int, world: int):
    import ray.train
    from doodleflow.training.photodoodle.data import pixel_pairs

    shard = ray.train.get_dataset_shard("train")
    micro = trainer.cfg.batch_plan(world).micro_batch
    return shard_epochs(shard, trainer.cfg, rank, lambda b: pixel_pairs(b, trainer.device), micro)


def train_loop_per_worker(config: dict) -> None:
    """What each Ray Train worker runs: load FLUX, add the LoRA, wrap in DDP, train, publish."""
    import ray.train
    import ray.train.torch
    from doodleflow.training.common.loop import WorkerContext, train
    from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
    from doodleflow.training.photodoodle.model import load_training_model
    from doodleflow.training.photodoodle.previews import doodle_previews
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

    cfg, plan = TrainConfig.from_dict(config["train"]), config["plan"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    wrap = (lambda m: ray.train.torch.prepare_model(m, move_to_device=False)) if world > 1 else None
    model = load_training_model(cfg, device)
    # The cache is loaded (or built, encoders on the device) before the transformer goes there: the
    # text encoders are back on the CPU by then, never beside the denoiser (training/common/memory.py).
    cache = cached_pairs(cfg, plan, model, device, rank) if plan["cache_dir"] else None
    trainer = PhotoDoodleTrainer(model, cfg, device, rank, wrap)
    run = RunDir(cfg.run.store, cfg.family, cfg.run_id())
    params = {**config["train"], "batch": cfg.batch_plan(world).params()}
    if config.get("memory_plan"):
        params["memory_plan"] = config["memory_plan"]
    tracker = make_tracker(config.get("tracking"), cfg.family, run.run_id, params) if rank == 0 else None
    # The samples' prompts are encoded once here (on the CPU when the cache released the encoders).
    samples = doodle_previews(trainer, run, plan, tracker) if rank == 0 else None
    if cache is not None:
        batches = cached_epochs(cache, trainer, rank, world)
    else:
        batches = streamed_epochs(trainer, rank, world)

    def report(metrics: dict) -> None:
        ray.train.report({k: v for k, v in metrics.items() if v is not None})

    def publish(t, info: dict) -> dict:
        return publish_run_lora(cfg, plan["trigger"], t.model.transformer, info, plan["base"])

    log = train_log if rank == 0 else (lambda msg: None)
    train(trainer, run, batches, WorkerContext(rank, world, report, log, publish, tracker, samples))


def _resources(cfg: TrainConfig) -> dict:
    cpus = cfg.launch.cpus_per_worker
    res = {"CPU": cpus if cpus is not None else cpus_per_worker(cfg.run.workers, cfg.run.use_gpu)}
    if cfg.run.use_gpu:
        res["GPU"] = 1
    return res


def launch(cfg: TrainConfig, log=train_log) -> dict:
    """Run one LoRA job to `cfg.run.steps` and return its result.json (LoRA URI, steps, final loss...).
    Where it runs, with how many CPUs per worker and restarts: `cfg.launch`."""
    import ray
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    plan = plan_job(cfg, log)
    stop.refuse_start(plan.run.run_id)  # a stop asked for before the job started: nothing to train
    where = init_ray(plan.cfg.launch.ray_address)
    memory = plan_for_job(plan.cfg, plan.run, log, ray.cluster_resources)
    workers = max(plan.cfg.run.workers, 1)
    res = _resources(plan.cfg)
    mode = f"cached ({plan.cache_dir})" if plan.cache_dir else "streamed"
    log(
        f"run {plan.run.run_id}: {workers} worker(s) {res} on Ray ({where}); {plan.pairs} pairs of "
        f"{plan.cfg.run.dataset} v{plan.cfg.run.version}, {mode}; {plan.cfg.batch_plan().describe()}"
    )
    plan_info = {
        "cache_dir": plan.cache_dir,
        "artist_filter": plan.artist_filter,
        "trigger": plan.trigger,
        "base": plan.base,
        "heldout": plan.heldout,
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "train": plan.cfg.to_dict(),
            "plan": plan_info,
            "threads": max(1, round(res["CPU"])),
            "tracking": tracking_config(plan.cfg.run.store),
            "memory_plan": memory,
        },
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=plan.cfg.run.use_gpu, resources_per_worker=res
        ),
        run_config=ray_run_config(plan.cfg.run.store, plan.run.run_id, plan.cfg.launch.max_failures),
        datasets=None if plan.cache_dir else {"train": pair_stream(plan)},
    )
    result = fit_watched(trainer, plan.run, plan.cfg.run.steps, log)
    return {**result, **plan.counts}
