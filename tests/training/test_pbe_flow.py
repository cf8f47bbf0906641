"""The train-pbe flow and CLI end to end: a driver killed with SIGKILL, resumed to the requested
step count; the Prefect run's artifacts (loss curve, metrics) and the latent cache path."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from training.common.metrics import MetricsLog
from training.common.rundir import RunDir

from .datasets import make_version

pytestmark = pytest.mark.slow
FAST = ["--resolution", "128", "--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "0"]


def _cli(*args: str, **kw):
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], text=True, **kw)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then every process it had started (Ray's GCS, raylet, workers), by pid,
    so no orphaned worker keeps writing to the run while it is resumed."""
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for c in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            c.send_signal(signal.SIGKILL)
    psutil.wait_procs(children, timeout=30)


def test_killed_driver_resumes_to_the_requested_step_count(prefect_api, tmp_path):
    store = str(tmp_path / "store")
    make_version(str(tmp_path), store, "kr", n_images=16)
    args = [
        "train",
        "pbe",
        "--dataset",
        "kr",
        "--store",
        store,
        "--run-name",
        "kr",
        "--steps",
        "12",
        "--checkpoint-every",
        "3",
        *FAST,
    ]
    run = RunDir(store, "pbe", "kr")
    with open(tmp_path / "killed.log", "w") as log:
        proc = _cli(*args, "--workers", "1", stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while (run.latest() or 0) < 6:
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint at step 6 within 300 s"
            time.sleep(0.5)
        _kill_tree(proc)
    killed_at = run.latest()
    assert 6 <= killed_at < 12 and proc.returncode == -signal.SIGKILL

    # Without --resume the run refuses to start over on top of its checkpoints.
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args, "--workers", "0"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "--resume" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args, "--workers", "0", "--resume", "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 12 and result["resumed_from"] == killed_at
    assert result["checkpoint"] == run.uri(run.checkpoint_path(12)) and run.latest() == 12

    recs = MetricsLog.load(run)
    assert [r["step"] for r in recs] == list(range(1, 13))  # each step once: the curve continues
    assert recs[killed_at].get("resumed_from") == killed_at
    first = sum(r["loss"] for r in recs[:3]) / 3
    after = sum(r["loss"] for r in recs[killed_at : killed_at + 3]) / 3
    assert after < first  # it continued from the trained weights, not from scratch
    assert result["final_loss"] == pytest.approx(recs[-1]["loss"])


def test_flow_trains_from_the_latent_cache_and_records_the_run(prefect_api, ray_cluster, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.train_pbe import train_pbe

    store = str(tmp_path / "store")
    version = make_version(str(tmp_path), store, "flow", n_images=8)
    result = train_pbe(
        dataset="flow",
        store=store,
        steps=4,
        workers=0,
        run_name="flow-run",
        config={
            "optim": {"lr": 1e-3, "warmup_steps": 0},
            "data": {"resolution": 128, "batch_size": 2, "latent_cache": "build"},
            "run": {"checkpoint_every": 2},
        },
    )
    assert result["steps"] == 4 and result["run_id"] == "flow-run"
    cache = RunDir(store, "pbe", "flow-run").fs.ls(f"{store}/caches/pbe-latents/flow/v{version:06d}")
    assert len(cache) == 1  # one cache (one encoder/preprocessing key), built by the flow's first task
    run = RunDir(store, "pbe", "flow-run")
    flow_runs = run.fs.ls(run.path("prefect"))
    assert len(flow_runs) == 1 and json.loads(run.fs.cat_file(flow_runs[0]))["steps"] == 4

    with get_client(sync_client=True) as client:
        md = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-pbe-flow-run"]))
        )
        table = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-pbe-flow-run-metrics"]))
        )
    assert md and "data:image/png;base64," in md[0].data and result["checkpoint"] in md[0].data
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
