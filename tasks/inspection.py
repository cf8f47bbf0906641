"""Prefect task: update the FiftyOne dataset of a version (thin wrapper over data.inspection)."""

from __future__ import annotations

from doodleflow.data.inspection.fo_build import sync_version
from doodleflow.infra.errors import retry_condition
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE


@task(
    name="update-fiftyone",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_condition,
)
def update_fiftyone(store_uri: str, dataset: str, version: int, home: str) -> dict:
    logger = get_run_logger()
    return sync_version(store_uri, dataset, version, home, log=logger.info)
