"""The `dataset-refresh` flow: OpenImages boxes -> Paint-by-Example triples -> a new dataset version.

Wiring only: plan (validates every input first), build shards in parallel (retried, cached by unit
key, skipped when already in the store), commit atomically, attach a report. The same steps run
without Prefect in `data.refresh.refresh_in_process`.
"""

from __future__ import annotations

import os
import time

from doodleflow.data.config import CurationConfig
from doodleflow.data.report import artifact_key, label_counts, markdown, reason_table, throughput
from doodleflow.data.store import DatasetStore
from doodleflow.flows import runtime
from doodleflow.flows.results import on_store
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.curation import build_shard, commit, plan_refresh
from doodleflow.tasks.shards import build_units
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context


@flow(name="dataset-refresh")
def dataset_refresh(
    source: str,
    dataset: str,
    store: str | None = None,
    images: str | None = None,
    config: CurationConfig | dict | None = None,
    update_fiftyone: bool = False,
) -> dict:
    """`config` is the whole curation config (data/config.py; a deployment passes it as a partial dict by
    section, e.g. {"variants": 2, "boxes": {"min_area": 0.05}}: what is not given takes its default; an
    unknown or mistyped key fails the run before any work, naming the key)."""
    logger = get_run_logger()
    store = resolve_store(store)
    cfg = config if isinstance(config, CurationConfig) else CurationConfig.from_dict(config or {})
    t0 = time.perf_counter()
    ref, units = plan_refresh(source, images, cfg, store, dataset)  # a reference: the plan stays in the store
    if ref.unchanged is not None:
        logger.info(f"dataset {dataset}: inputs unchanged since version {ref.previous}, nothing parsed")
        return ref.unchanged
    for w in ref.warnings:
        logger.warning(w)
    logger.info(
        f"planned {ref.jobs} samples from {ref.images} images ({ref.images_absent} annotated images "
        f"absent); {ref.new_jobs} new in {len(units)} shards (previous version: {ref.previous})"
    )
    build = on_store(build_shard, store)
    total = sum(u.n_samples for u in units)
    stats = build_units(build, units, (cfg, store, dataset), store, dataset, logger, total)
    run_id = str(get_run_context().flow_run.id)
    summary = commit(store, dataset, cfg, ref, stats, run_id, source)
    speed = throughput(stats, time.perf_counter() - t0, os.cpu_count() or 1)
    summary["throughput"] = speed
    _report(summary, speed, store, dataset)
    if update_fiftyone:  # last step: users look at the data before they spend GPU hours on it
        from doodleflow.tasks.inspection import update_fiftyone as update_fo

        summary["fiftyone"] = update_fo(store, dataset, summary["version"], runtime.home())
    logger.info(
        f"dataset {dataset} version {summary['version']}: {summary['samples_total']} samples "
        f"({summary['samples_new']} new) at {summary['path']}"
    )
    return summary


def _report(summary: dict, speed: dict, store: str, dataset: str) -> None:
    labels = (
        label_counts(DatasetStore(store, dataset), summary["version"]) if summary["samples_total"] else {}
    )
    key = artifact_key("refresh", dataset)
    create_markdown_artifact(markdown(summary, labels, speed), key=key, description="dataset refresh summary")
    create_table_artifact(
        reason_table(summary) or [{"kind": "-", "reason": "none", "count": 0}],
        key=f"{key}-reasons",
        description="dropped and quarantined boxes by reason",
    )
