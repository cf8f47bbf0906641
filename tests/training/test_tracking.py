"""Live tracking (training/runtime/tracking.py) against a real MLflow SQLite store: records arrive in
order, a restarted run continues the same MLflow run, and an unreachable server never blocks a step."""

from __future__ import annotations

import logging
import time

import pytest
from doodleflow.training.runtime.tracking import RUN_TAG, Tracker, find_run
from mlflow import MlflowClient


def _records(steps, loss=lambda s: 1.0 / s, **extra):
    return [{"step": s, "loss": loss(s), "lr": 1e-4, "samples_per_s": 10.0, "time": time.time(), **extra}
            for s in steps]  # fmt: skip


def test_steps_reach_mlflow_and_a_restart_continues_the_same_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = {"optim": {"lr": 1e-4}, "run": {"steps": 8}}
    first = Tracker(uri, "pbe", "r1", params, artifact_root=str(tmp_path / "artifacts"))
    for rec in _records(range(1, 6)):
        first.log(rec)
    # The worker dies here, without finish(): what its thread had sent is in MLflow.
    client = MlflowClient(tracking_uri=uri)
    deadline = time.time() + 60
    while not (first.mlflow_run and len(client.get_metric_history(first.mlflow_run, "loss")) == 5):
        assert time.time() < deadline, "the tracker's thread did not send the records"
        time.sleep(0.2)

    second = Tracker(uri, "pbe", "r1", params, artifact_root=str(tmp_path / "artifacts"))
    for rec in _records(range(4, 9), resumed_from=3):
        second.log(rec)
    second.finish({"steps": 8, "final_loss": 0.125})

    run_id = find_run(client, "pbe", "r1")
    assert run_id == first.mlflow_run == second.mlflow_run
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[RUN_TAG] == "pbe/r1"
    assert run.data.params == {"optim.lr": "0.0001", "run.steps": "8"}
    assert run.data.tags["doodleflow.final_loss"] == "0.125"
    hist = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in hist) == [1, 2, 3, 4, 4, 5, 5, 6, 7, 8]  # 4 and 5 trained twice
    assert {m.step: m.value for m in hist}[8] == pytest.approx(1 / 8)
    assert find_run(client, "pbe", "other") is None

    # A worker killed before its thread sent anything: the resumed run backfills the checkpointed
    # steps (from metrics.jsonl) that MLflow lacks, then goes on live.
    resumed = Tracker(uri, "pbe", "r2", params)
    resumed.backfill(_records(range(1, 4)))
    for rec in _records(range(4, 6), resumed_from=3):
        resumed.log(rec)
    resumed.finish({"steps": 5})
    assert sorted(m.step for m in client.get_metric_history(resumed.mlflow_run, "loss")) == [1, 2, 3, 4, 5]


def test_an_unreachable_server_never_blocks_a_step(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    t = Tracker("http://127.0.0.1:9", "pbe", "down", {})  # nothing listens on port 9
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="doodleflow.training.runtime.tracking"):
        for rec in _records(range(1, 21)):
            t.log(rec)
        logged = time.perf_counter() - t0
        t.finish({"steps": 20})
    assert logged < 0.5  # 20 steps queued without waiting on the network
    assert t.mlflow_run is None and len(t.pending) >= 1  # kept, not dropped, while unreachable
    assert sum("unavailable" in r.message for r in caplog.records) == 1  # one warning, not one per step
