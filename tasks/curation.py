"""Prefect tasks of the dataset refresh: thin wrappers over data/ (no image math here)."""

from __future__ import annotations

from doodleflow.data import refresh
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan_ref import PlanRef, drop_plan, load_plan, save_plan
from doodleflow.data.refresh import commit_version
from doodleflow.data.shard import build_unit
from doodleflow.data.store import DatasetStore
from doodleflow.data.units import WorkUnit, new_plan_folder
from doodleflow.infra.errors import retry_condition
from prefect import task
from prefect.cache_policies import NO_CACHE


def _unit_cache_key(_ctx, params: dict) -> str:
    # The unit key already hashes config, builder version, images and their fingerprints (never the
    # plan folder the unit's rows are read from: a rerun's new plan finds the same cache entries).
    return f"build-shard|{params['store_uri']}|{params['dataset']}|{params['unit'].key}"


@task(name="plan-refresh", cache_policy=NO_CACHE)
def plan_refresh(
    source: str, images: str | None, cfg: CurationConfig, store_uri: str, dataset: str
) -> tuple[PlanRef, list[WorkUnit]]:
    """Read and validate every input (fails fast on structural errors), then diff with the store.
    The plan, its diff and the units table stay in the store, in one plan folder (data/plan_ref.py,
    data/units.py); the result is references: the plan's, and one small `WorkUnit` per shard. The
    folder lives until `commit` removes it, so a build that Prefect retries can read its unit again."""
    ds = DatasetStore(store_uri, dataset)
    path = new_plan_folder(ds)
    plan, diff, units = refresh.plan_refresh(source, images, cfg, store_uri, dataset, path)
    if plan.unchanged is not None:
        return PlanRef(None, diff.previous, unchanged=plan.unchanged), []
    return save_plan(ds, plan, diff, path), units


@task(
    name="build-shard",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=retry_condition,
    cache_key_fn=_unit_cache_key,
    persist_result=True,
)
def build_shard(unit: WorkUnit, cfg: CurationConfig, store_uri: str, dataset: str) -> dict:
    return build_unit(unit, cfg, store_uri, dataset, worker=_worker_name())


def _worker_name() -> str:
    """Where the shard was built: the Ray node id on a cluster, else host:pid (recorded in its stats)."""
    import os
    import socket
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return f"ray:{ray.get_runtime_context().get_node_id()}"
    return f"{socket.gethostname()}:{os.getpid()}"


@task(name="commit-version", cache_policy=NO_CACHE)
def commit(
    store_uri: str,
    dataset: str,
    cfg: CurationConfig,
    ref: PlanRef,
    stats: list[dict],
    run_id: str,
    source: str,
) -> dict:
    ds = DatasetStore(store_uri, dataset)
    plan, diff = load_plan(ds, ref)
    summary = commit_version(ds, cfg, plan, diff, stats, run_id, source)
    drop_plan(ds, ref)
    return summary
