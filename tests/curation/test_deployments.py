"""infra/prefect.yaml: every deployment points at a real flow, with parameters the flow accepts and
a valid cron schedule, and builds into a Prefect deployment object."""

from __future__ import annotations

import importlib
import inspect
import os

import yaml
from prefect.client.schemas.schedules import CronSchedule

from tests.conftest import REPO


def _deployments() -> list[dict]:
    with open(os.path.join(REPO, "infra", "prefect.yaml")) as f:
        return yaml.safe_load(f)["deployments"]


def test_deployments_reference_real_flows_and_valid_schedules():
    deps = _deployments()
    assert {d["name"] for d in deps} >= {
        "nightly-refresh",
        "train-pbe",
        "omnieditor",
        "train-artist",
        "ingest-pairs",
    }
    for d in deps:
        path, fn = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, fn)
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(d.get("parameters", {})) <= accepted, (d["name"], set(d["parameters"]) - accepted)
        for sched in d.get("schedules", []):
            CronSchedule(cron=sched["cron"], timezone=sched.get("timezone", "UTC"))  # raises if invalid
        deployment = flow.to_deployment(
            name=d["name"],
            cron=[s["cron"] for s in d.get("schedules", [])] or None,
            parameters=d.get("parameters", {}),
        )
        assert deployment.name == d["name"]


def test_nightly_refresh_is_scheduled_daily():
    nightly = next(d for d in _deployments() if d["name"] == "nightly-refresh")
    assert nightly["schedules"][0]["cron"] == "0 3 * * *" and nightly["concurrency_limit"] == 1


def test_nightly_refresh_passes_the_curation_config_whole():
    """Its `config` is a partial CurationConfig dict by section, built as the CLI builds it."""
    from doodleflow.data.config import CurationConfig

    nightly = next(d for d in _deployments() if d["name"] == "nightly-refresh")
    assert set(nightly["parameters"]) <= {"source", "dataset", "store", "images", "config", "update_fiftyone"}
    assert CurationConfig.from_dict(nightly["parameters"]["config"]) == CurationConfig()
