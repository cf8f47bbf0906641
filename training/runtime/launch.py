"""The Ray Train launch of a training job, one for every model family (training/family.py).

The driver asks the family for its plan (the pinned config, the run directory, the dataset and the
cache checks: training/runs/plan.py), refuses a start already stopped, joins or starts Ray, plans
the GPU memory, and starts a `TorchTrainer`: DDP over NCCL on GPUs, gloo on CPU. Each worker asks
the family for its trainer, epochs and previews, and runs the shared step loop. Workers resume from
the run's latest checkpoint in the store, which is also how `FailureConfig` restarts continue after a
worker dies. The only Ray module of the launch; what differs by family are the family's hooks.
"""

from __future__ import annotations

from doodleflow.training.family import Family, WorkerEnv, family
from doodleflow.training.memplan.record import plan_for_job
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime import stop
from doodleflow.training.runtime.logs import log as _log
from doodleflow.training.runtime.ray_utils import init_ray, ordered_ingest, ray_run_config
from doodleflow.training.runtime.tracking import make_tracker, tracking_config
from doodleflow.training.runtime.watched_fit import fit_watched


def train_loop_per_worker(config: dict) -> None:
    """What each Ray Train worker runs: the family's trainer (DDP wrapped) and epochs, then the loop."""
    import ray.train
    import ray.train.torch
    import torch
    from doodleflow.training.runtime.loop import WorkerContext, train

    hooks = family(config["family"]).hooks()
    cfg = hooks.config_class().from_dict(config["train"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if "threads" in config:  # the CPUs the worker reserved (a family that asks for it)
        torch.set_num_threads(max(1, int(config["threads"])))
    wrap = (lambda m: ray.train.torch.prepare_model(m, move_to_device=False)) if world > 1 else None
    env = WorkerEnv(rank, world, device, wrap, config, lambda: ray.train.get_dataset_shard("train"))
    parts = hooks.worker(cfg, env)
    run = RunDir(cfg.run.store, hooks.run_family(cfg), cfg.run_id())
    params = {**config["train"], "batch": cfg.batch_plan(world).params()}
    if config.get("memory_plan"):
        params["memory_plan"] = config["memory_plan"]
    tracking = config.get("tracking")
    tracker = make_tracker(tracking, hooks.run_family(cfg), run.run_id, params) if rank == 0 else None
    samples = parts.previews(run, tracker) if rank == 0 else None
    epochs = parts.epochs()

    def report(metrics: dict) -> None:
        ray.train.report({k: v for k, v in metrics.items() if v is not None})

    log = _log if rank == 0 else (lambda msg: None)
    wctx = WorkerContext(rank, world, report, log, parts.save_final, tracker, samples)
    train(parts.trainer, run, epochs, wctx)


def _train_set(dataset) -> dict | None:
    return None if dataset is None else {"train": dataset}


def launch(fam: Family, cfg, log=_log) -> dict:
    """Run `fam`'s job to `cfg.run.steps` and return its result.json (checkpoint or LoRA URI, steps,
    final loss...) with the plan's counts. Where it runs, on how many workers and restarts: `cfg.launch`."""
    import ray
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    hooks = fam.hooks()
    plan = hooks.plan(cfg, log)
    stop.refuse_start(plan.run.run_id)  # a stop asked for before the job started: nothing to train
    where = init_ray(plan.cfg.launch.ray_address)
    memory = plan_for_job(plan.cfg, plan.run, log, ray.cluster_resources)
    workers, res = hooks.scaling(plan.cfg)
    log(
        f"run {plan.run.run_id}: {workers or 'local-mode'} worker(s) {res or ''} on Ray ({where}); "
        f"{hooks.describe(plan)}; {plan.cfg.batch_plan().describe()}"
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "family": fam.name,
            "train": plan.cfg.to_dict(),
            **hooks.worker_config(plan, res),
            "tracking": tracking_config(plan.cfg.run.store),
            "memory_plan": memory,
        },
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=plan.cfg.run.use_gpu, resources_per_worker=res
        ),
        run_config=ray_run_config(plan.cfg.run.store, plan.run.run_id, plan.cfg.launch.max_failures),
        datasets=_train_set(hooks.dataset(plan)),
        dataset_config=ordered_ingest(),
    )
    result = fit_watched(trainer, plan.run, plan.cfg.run.steps, log)
    return {**result, **plan.counts}
