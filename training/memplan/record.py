"""A training job's plan, recorded: logged, written to the run as `memory_plan.json` and handed to the
workers for MLflow's params. Called by a family's `launch` once Ray is up and before its workers
start, where a remote cluster's GPUs are known (its accelerator type); the CLI's preflight has
already refused what it could check (training/runtime/preflight.py)."""

from __future__ import annotations

from doodleflow.training.memplan.auto import cached_plan, refuse_if_over
from doodleflow.training.memplan.limits import from_resources
from doodleflow.training.runtime.preflight import gpu_limit


def plan_for_job(cfg, run, log, cluster_resources) -> dict | None:
    """The plan as recorded (None for a CPU run: the plan is the GPU's, and costs seconds of CPU a run);
    ConfigError when it exceeds the cluster's GPUs. `cluster_resources`: Ray's, called only when
    neither --gpu-memory nor local GPUs say the limit (Ray is training/runtime/launch.py's to import)."""
    if not (cfg.run.use_gpu or cfg.launch.gpu_memory is not None):
        log("memory plan: not planned for a CPU run (doodleflow plan train ... plans the GPU run)")
        return None
    limit = gpu_limit(cfg)
    if limit is None:
        limit = from_resources(cluster_resources())
    if limit is None:
        plan = cached_plan(cfg)
        log(f"{plan.line()}; the cluster names no GPU type: not checked (pass --gpu-memory)")
    else:
        plan = refuse_if_over(cfg, limit, log)
    record = {**plan.to_dict(), "gpu_memory_gib": limit}
    run.write_json("memory_plan.json", record)
    return record
