"""Build work units as Prefect tasks, the same way for every dataset kind (refresh and pair ingest).

All units are submitted at once (spread over the nodes on Ray), one progress line per finished shard
(its build rate and the run's wall rate kept apart), and what Prefect's result cache claims but the
store lacks (a wiped or different bucket) is rebuilt with the cache bypassed.
"""

from __future__ import annotations

from collections.abc import Sequence

from doodleflow.data.report import ShardProgress
from doodleflow.data.store import DatasetStore
from doodleflow.tasks.progress import StageProgress, artifact_key
from prefect import unmapped
from prefect.context import get_run_context
from prefect.futures import as_completed


def _submit(build, units: Sequence, args: tuple):
    """On Ray, spread shards over the nodes: submission is slower than a shard, so the default
    (prefer the driver's node) would keep a cluster's other nodes idle."""
    fixed = [unmapped(a) for a in args]
    if type(get_run_context().task_runner).__name__ != "RayTaskRunner":
        return build.map(units, *fixed)
    from prefect_ray.context import remote_options

    with remote_options(scheduling_strategy="SPREAD"):
        return build.map(units, *fixed)


def build_units(
    build, units: Sequence, args: tuple, store: str, dataset: str, logger, total: int, noun: str = "samples"
) -> list[dict]:
    """`build(unit, *args)` for every unit as Prefect task runs; their stats in unit order."""
    progress = ShardProgress(len(units), total, noun)
    # One terminal line for the stage; the Prefect run gets a progress artifact and bounded-rate lines.
    stage = StageProgress(f"{dataset}: build {noun}", len(units), artifact_key("progress", dataset, noun))
    results: dict[str, dict] = {}
    for fut in as_completed(_submit(build, units, args)):
        s = fut.result()
        if fut.state.name == "Cached":  # Prefect's cache answered: nothing was built this run
            s = {**s, "reused": True}
        results[s["key"]] = s
        stage.update(len(results), progress.line(s))
    stage.close()
    # Prefect's cache can outlive the store (a wiped or different bucket): rebuild what is missing.
    ds = DatasetStore(store, dataset)
    for u in units:
        if ds.shard_stats(u.key) is None:
            logger.warning(f"shard {u.key[:12]} cached by Prefect but absent from the store: rebuilding")
            results[u.key] = build.with_options(refresh_cache=True)(u, *args)
    return [results[u.key] for u in units]
