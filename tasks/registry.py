"""Prefect tasks: register a trained artifact with its lineage, and show it on the run."""

from __future__ import annotations

import base64
import math
import os

from doodleflow.data.report import artifact_key
from doodleflow.infra import settings
from doodleflow.infra.errors import retry_condition
from doodleflow.training.registry.record import ArtifactRecord
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run


def _log_curve(reg, run_id: str, records: list[dict]) -> None:
    """Replay a run's per-step metrics (from its metrics.jsonl) into an MLflow run: only for runs
    trained without live tracking (training/runtime/tracking.py)."""
    from doodleflow.training.runtime.tracking import record_metrics
    from mlflow.entities import Metric

    batch = [Metric(*m) for r in records for m in record_metrics(r)]
    for i in range(0, len(batch), 900):  # MLflow caps a batch at 1000 metrics
        reg.client.log_batch(run_id, metrics=batch[i : i + 900])


@task(
    name="register-artifact",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_condition,
)
def register_artifact(record: ArtifactRecord, store: str | None = None) -> dict:
    """Register `record` (training/registry/record.py) and show the version on the Prefect run."""
    from doodleflow.training.registry import Registry
    from doodleflow.training.runtime.tracking import find_run

    reg = Registry(home=settings.home(), store=store)
    for k, v in record.metrics.items():  # on the run page too; the registry records it as null
        if isinstance(v, float) and not math.isfinite(v):
            get_run_logger().warning(f"registering {record.name} with metric {k} = {v}: not a finite number")
    run_id = find_run(reg.client, *record.trained) if record.trained else None
    if run_id is None:
        run_id = reg.start_run(record.kind, f"{record.kind}:{record.name}", record.config)
        if record.curve:
            _log_curve(reg, run_id, record.curve)
    r = reg.register(
        record.name,
        record.kind,
        record.uri,
        config=record.config,
        dataset=record.dataset,
        parent=record.parent,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        metrics=record.metrics,
        images=[i for i in record.images if os.path.exists(i)],
        run_id=run_id,
    )
    create_markdown_artifact(
        registration_markdown(r.to_dict(), record.images),
        key=artifact_key("registry", record.name),
        description=f"registered {record.kind} {record.name}:{r.version}",
    )
    return {k: v for k, v in r.to_dict().items() if k not in ("files", "config")}


def registration_markdown(r: dict, images: list[str]) -> str:
    lines = [
        f"# Registered `{r['name']}:{r['version']}` ({r['kind']})",
        "",
        f"- load with `--model {r['name']}:{r['version']}`; files: `{r['uri']}`",
        f"- MLflow run `{r['run_id']}`; parent `{r.get('parent') or '-'}`; code `{r.get('git_commit', '')[:12]}`"
        + (" (dirty)" if r.get("git_dirty") else ""),
        f"- dataset: `{r.get('dataset')}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in (r.get("metrics") or {}).items()
    ]
    for img in images:
        if os.path.exists(img) and os.path.getsize(img) < 4_000_000:
            with open(img, "rb") as f:
                lines += [
                    "",
                    f"![{os.path.basename(img)}](data:image/png;base64,{base64.b64encode(f.read()).decode()})",
                ]
    return "\n".join(lines) + "\n"


@task(name="save-picked-lora", cache_policy=NO_CACHE)
def save_picked_lora(picked) -> tuple:
    """A LoRA run's checkpoint at the step a person picked, saved as a LoRA with its card."""
    from doodleflow.training.photodoodle.picked import save_picked_lora as save

    return save(picked)
