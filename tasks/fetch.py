"""Prefect tasks of `fetch openimages`: thin wrappers over data/oi_fetch.py and data/oi_download.py."""

from __future__ import annotations

from doodleflow.data.oi_download import fetch_chunk
from doodleflow.data.oi_fetch import FetchConfig, FetchPlan, finish, prepare
from doodleflow.infra.errors import retry_condition
from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="plan-fetch", cache_policy=NO_CACHE)
def plan_fetch(cfg: FetchConfig) -> FetchPlan:
    """Annotation files into DEST, the selection into chunk files (references: paths)."""
    return prepare(cfg)


# No result cache: the files on disk are the truth, and a rerun skips what is already verified there.
@task(
    name="fetch-images",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=retry_condition,
    cache_policy=NO_CACHE,
)
def fetch_images(chunk: str, cfg: FetchConfig) -> dict:
    return fetch_chunk(chunk, cfg.download())


@task(name="fetch-report", cache_policy=NO_CACHE)
def fetch_report(cfg: FetchConfig, plan: FetchPlan, stats: list[dict], seconds: float) -> dict:
    return finish(cfg, plan, stats, seconds)
