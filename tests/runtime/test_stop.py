"""Ctrl-C, SIGTERM and a cancel in Prefect stop a training run cleanly (issue 22 item 2): the Ray Train
job stops at its next step boundary and writes a checkpoint, the run is recorded as cancelled
(result.json, MLflow KILLED, Prefect Cancelled), the command prints the `--resume` command and exits
130, and none of its processes is left 30 s after the signal (counted as tests/runtime/test_orphans.py
does). Real runs of the tiny PbE model with one Ray Train worker, each interrupted at its first steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from doodleflow.flows.cli import _parser
from doodleflow.training.registry import Registry
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.tracking import find_run

from tests.runtime.test_orphans import MARK, alive, cmdline, marked
from tests.training.datasets import make_version

pytestmark = pytest.mark.slow(seconds=300)
GONE_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("stop")
    store = str(root / "store")
    make_version(str(root), store, "st", n_images=8)
    return store


def start(store: str, run: str, tmp_path, api: str | None) -> tuple[subprocess.Popen, str]:
    """`train pbe` as a terminal starts it: in a process group of its own (the terminal's job), with
    --steps far beyond what it reaches before it is stopped."""
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env.update({MARK: mark, **({"PREFECT_API_URL": api} if api else {})})
    args = f"train pbe --dataset st --store {store} --run-name {run} --steps 400 --workers 1"
    args += " --resolution 128 --batch-size 2 --checkpoint-every 200 --no-register"
    log = open(tmp_path / "cli.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "doodleflow.flows.cli", *args.split()], env=env,
                            stdout=log, stderr=log, process_group=0)  # fmt: skip
    return proc, mark


def training(proc: subprocess.Popen, tmp_path, timeout: float = 400) -> list[psutil.Process]:
    """Wait until rank 0 trains; returns the command's processes then."""
    deadline = time.time() + timeout
    while "train pbe: step " not in (tmp_path / "cli.log").read_text():
        assert proc.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
        assert time.time() < deadline, f"no step within {timeout} s"
        time.sleep(0.5)
    kids = psutil.Process(proc.pid).children(recursive=True)
    assert any("ray::" in cmdline(k) for k in kids), [cmdline(k) for k in kids]
    return kids


def stopped_cleanly(proc, mark: str, kids, t_signal: float, tmp_path, store: str, run_id: str) -> dict:
    """The command exits 130 with the resume command, nothing of it runs 30 s after the signal, and the
    run is checkpointed at the step it stopped at and recorded as cancelled (result.json, MLflow)."""
    rc = proc.wait(timeout=GONE_WITHIN_S + 30)
    while time.time() - t_signal < GONE_WITHIN_S and (marked(mark) or any(alive(k) for k in kids)):
        time.sleep(0.2)
    left = marked(mark) + [f"{k.pid} {cmdline(k)}" for k in kids if alive(k)]
    took = time.time() - t_signal
    assert not left, f"still running {took:.1f} s after the signal: {left}"
    print(f"{run_id}: exited and left no process {took:.1f} s after the signal")  # docs/reliability.md
    log = (tmp_path / "cli.log").read_text()
    assert rc == 130, log[-3000:]
    hint = f"continue with: doodleflow train pbe --dataset st --run-name {run_id} --resume --store {store}"
    assert hint in log, log[-3000:]
    assert "Traceback" not in log and "Crash detected" not in log and "ERROR" not in log, log[-3000:]

    run = RunDir(store, "pbe", run_id)
    result = run.read_json("result.json")
    assert result["status"] == "cancelled" and 1 <= result["steps"] < 400, result
    assert run.latest() == result["steps"]  # the checkpoint of the step it stopped at
    assert result["checkpoint"] == run.uri(run.checkpoint_path(result["steps"]))
    assert run.read_json("lease.json") is None  # released: --resume is not in anyone's way
    client = Registry().client
    assert client.get_run(find_run(client, "pbe", run_id)).info.status == "KILLED"

    # The printed command continues the run as recorded (the same 400 steps), checked before start-up.
    from doodleflow.flows.commands.pbe import train_config

    cfg = train_config(_parser().parse_args(hint.split("doodleflow ", 1)[1].split()))
    assert (cfg.run.steps, cfg.run.resume, cfg.data.resolution) == (400, True, 128)
    return result


def test_ctrl_c_to_the_process_group_stops_at_a_step_boundary(store, tmp_path):
    """What a terminal does: SIGINT to every process of the foreground group. The command starts its
    own Prefect API (the one that died at once before)."""
    proc, mark = start(store, "ctrlc", tmp_path, api=None)
    kids = training(proc, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    stopped_cleanly(proc, mark, kids, time.time(), tmp_path, store, "ctrlc")


def _the_flow_run(client, run_id: str):
    """The train-pbe flow run of `run_id` (its config parameter names the run)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train-pbe"])))
    mine = [r for r in runs if (r.parameters.get("config") or {}).get("run", {}).get("run_name") == run_id]
    assert len(mine) == 1, [r.parameters for r in runs]
    return mine[0]


def test_sigterm_stops_at_a_step_boundary_and_the_flow_run_is_cancelled(prefect_api, store, tmp_path):
    from prefect.client.orchestration import get_client

    proc, mark = start(store, "term", tmp_path, api=prefect_api)
    kids = training(proc, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    stopped_cleanly(proc, mark, kids, time.time(), tmp_path, store, "term")
    with get_client(sync_client=True) as client:
        assert _the_flow_run(client, "term").state.type.value == "CANCELLED"


def test_a_cancel_in_prefect_stops_at_a_step_boundary(prefect_api, store, tmp_path):
    """The UI's Cancel: the flow run's state set to Cancelling through the API server."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    proc, mark = start(store, "ui", tmp_path, api=prefect_api)
    kids = training(proc, tmp_path)
    with get_client(sync_client=True) as client:
        fr = _the_flow_run(client, "ui")
        client.set_flow_run_state(fr.id, Cancelling(message="cancelled from the UI"), force=True)
        t_cancel = time.time()
        stopped_cleanly(proc, mark, kids, t_cancel, tmp_path, store, "ui")
        assert client.read_flow_run(fr.id).state.type.value == "CANCELLED"
    assert "cancelled in Prefect" in (tmp_path / "cli.log").read_text()
