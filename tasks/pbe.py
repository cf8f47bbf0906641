"""Prefect tasks of the training flows: thin wrappers over training/ (no model code here)."""

from __future__ import annotations

from doodleflow.data.report import artifact_key
from doodleflow.infra.errors import Stopped, retry_condition
from doodleflow.tasks.progress import training_progress
from doodleflow.tasks.stopping import cancelled_state, watch_cancel
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.runs.metrics import MetricsLog
from doodleflow.training.runs.report import metrics_table, run_markdown
from doodleflow.training.runs.rundir import RunDir
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run


@task(name="build-pbe-latent-cache", cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_condition)
def build_pbe_cache(cfg: TrainConfig) -> dict:
    from doodleflow.training.pbe.ray_cache import build_cache

    return build_cache(cfg, cfg.launch.ray_address)


@task(
    name="train-pbe-job",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_condition,
)
def run_pbe_job(cfg: TrainConfig) -> dict:
    """The Ray Train job; a retry of this task continues the same run from its latest checkpoint."""
    from doodleflow.training.family import family
    from doodleflow.training.runtime.launch import launch

    if task_run.run_count > 1:
        cfg = cfg.replace(run={"resume": True})
    with watch_cancel(), training_progress("train pbe", cfg.run.steps, "train-pbe", cfg.run.dataset):
        try:
            return launch(family("pbe"), cfg)
        except Stopped as e:  # stopped on request, checkpointed: Cancelled, not Failed
            return cancelled_state(e)


@task(name="report-pbe-run", cache_policy=NO_CACHE)
def report_pbe_run(store: str, result: dict) -> None:
    """Loss curve + summary (markdown), metrics (table), and the flow run noted in the run directory."""
    run = RunDir(store, "pbe", result["run_id"])
    key = artifact_key("train-pbe", result["run_id"])
    create_markdown_artifact(
        run_markdown(f"Paint-by-Example run {result['run_id']}", result, run.read_bytes("loss.png")),
        key=key,
        description="training run summary and loss curve",
    )
    create_table_artifact(
        metrics_table(MetricsLog.load(run)) or [{"step": 0}],
        key=f"{key}-metrics",
        description="logged steps (subsampled to 200 rows)",
    )
    run.write_json(
        f"prefect/{flow_run.id}.json",
        {
            "flow_run_id": flow_run.id,
            "flow_run_name": flow_run.name,
            "steps": result["steps"],
            "checkpoint": result["checkpoint"],
        },
    )
