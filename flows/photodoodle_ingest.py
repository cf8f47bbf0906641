"""The `photodoodle-ingest-pairs` flow: a folder of editing pairs -> a new pair dataset version.

Wiring only, as `dataset-refresh`: plan (validates the whole source first), build shards in parallel
(retried, cached by unit key, skipped when already in the store), commit atomically, attach a report.
"""

from __future__ import annotations

from doodleflow.data.names import validate_name
from doodleflow.data.report import artifact_key
from doodleflow.flows.results import on_store
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.photodoodle import build_pairs_shard, commit_pairs, plan_pairs_task
from doodleflow.tasks.shards import build_units
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context


def _markdown(s: dict) -> str:
    head = "" if s["created"] else " (unchanged: no new version)"
    lines = [f"# Pair dataset `{s['dataset']}` version {s['version']}{head}", "", f"- path: `{s['path']}`",
             f"- pairs: {s['pairs_total']} ({s['layout']} layout); triggers: {s['triggers']}", "",
             "| artist | pairs |", "|---|---|", *[f"| {a} | {n} |" for a, n in s["artists"].items()], "",
             "| quarantined | count |", "|---|---|", *[f"| {r} | {n} |" for r, n in s["quarantined"].items()]]  # fmt: skip
    return "\n".join(lines)


@flow(name="photodoodle-ingest-pairs")
def ingest_pairs(source: str, dataset: str, store: str | None = None, artist: str | None = None,
                 trigger: str | None = None, pairs_per_shard: int = 64) -> dict:  # fmt: skip
    logger = get_run_logger()
    store = resolve_store(store)
    validate_name(dataset, "dataset name")
    plan, units = plan_pairs_task(source, artist, trigger, pairs_per_shard, store, dataset)
    logger.info(
        f"planned {len(plan.jobs)} pairs in {len(units)} shard(s); {len(plan.quarantine)} quarantined"
    )
    build = on_store(build_pairs_shard, store)
    stats = build_units(build, units, (store, dataset), store, dataset, logger, len(plan.jobs), "pairs")
    summary = commit_pairs(store, dataset, plan, stats, str(get_run_context().flow_run.id))
    create_markdown_artifact(
        _markdown(summary), key=artifact_key("pairs", dataset), description="pair ingest"
    )
    logger.info(
        f"dataset {dataset} version {summary['version']}: {summary['pairs_total']} pairs at {summary['path']}"
    )
    return summary
