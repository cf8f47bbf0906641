"""kill -9 of a command leaves nothing running: its Prefect API, pool workers, resource tracker, Ray's
GCS, raylet, agents and training workers all end within 10 s (flows/processes.py), and the killed
run's lease does not block a resume (training/runs/lease.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.synthetic import make_source
from doodleflow.training.runs.lease import LEASE, RunLease
from doodleflow.training.runs.rundir import RunDir

pytestmark = pytest.mark.slow(seconds=70)
MARK = "DOODLEFLOW_TEST_MARK"


def marked(mark: str) -> list[str]:
    """Live processes (not zombies) started with MARK=mark in their environment, as 'pid cmdline'."""
    out = []
    for pid in psutil.pids():
        if pid == os.getpid():
            continue
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARK) == mark:
                out.append(f"{pid} {' '.join(p.cmdline())[:120]}")
        except (psutil.Error, OSError):
            continue
    return out


def start(args: list[str], tmp_path) -> tuple[subprocess.Popen, str]:
    """The CLI on embedded defaults (no PREFECT_API_URL: it starts its own API), marked."""
    mark = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS")}
    env[MARK] = mark
    log = open(tmp_path / "cli.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "doodleflow.flows.cli", *args], env=env, stdout=log, stderr=log
    )
    return proc, mark


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for(proc: subprocess.Popen, tmp_path, pattern: str, timeout: float = 240) -> list[psutil.Process]:
    """Wait until a descendant's command line contains `pattern`; returns all descendants then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
        kids = psutil.Process(proc.pid).children(recursive=True)
        if any(pattern in cmdline(k) for k in kids):
            return kids
        time.sleep(0.3)
    raise AssertionError(
        f"no {pattern!r} process within {timeout} s: {(tmp_path / 'cli.log').read_text()[-2000:]}"
    )


def wait_for_text(proc: subprocess.Popen, tmp_path, text: str, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while text not in (tmp_path / "cli.log").read_text():
        assert proc.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
        assert time.time() < deadline, f"no {text!r} within {timeout} s"
        time.sleep(0.5)


def quiet_terminal(err: str) -> None:
    """A redirected run's stderr: no colour codes, no library warning, no line twice (timestamps aside)."""
    assert "\x1b[" not in err, err[:2000]
    for noise in ("Failed to query Ray Train Controller", "torchvision", "Token authentication", "Warning:"):
        assert noise not in err, err[:3000]
    lines = [re.sub(r"^[\d:. -]+\|?", "", line).strip() for line in err.splitlines() if line.strip()]
    repeated = {line for line in lines if lines.count(line) > 1}
    assert not repeated, repeated


def kill_and_check(proc: subprocess.Popen, mark: str, kids: list[psutil.Process]) -> float:
    assert len(kids) >= 3, kids
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    while time.time() - t0 < 10 and (marked(mark) or any(alive(k) for k in kids)):
        time.sleep(0.2)
    left = marked(mark) + [f"{k.pid} {cmdline(k)}" for k in kids if alive(k)]
    assert not left, f"still running 10 s after SIGKILL: {left}"
    return time.time() - t0


def test_killed_refresh_leaves_no_process(tmp_path):
    src = tmp_path / "src"
    make_source(str(src), 40, seed=0, size=(320, 240), boxes_per_image=(1, 1))
    args = ["refresh", "--source", str(src), "--dataset", "orph", "--store", str(tmp_path / "store")]
    proc, mark = start([*args, "--samples-per-shard", "1", "--workers", "2"], tmp_path)
    kids = wait_for(proc, tmp_path, "spawn_main")  # the pool's workers are up: the API is too
    assert sum("uvicorn" in cmdline(k) for k in kids) == 1  # one API, started by the command, shared
    quiet_terminal((tmp_path / "cli.log").read_text())
    kill_and_check(proc, mark, kids)


def test_killed_training_leaves_no_process_and_no_lease_in_the_way(tmp_path):
    store = str(tmp_path / "store")
    src = tmp_path / "src"
    make_source(str(src), 12, seed=0, size=(320, 240), boxes_per_image=(1, 1))
    refresh_in_process(str(src), "orpht", store, CurationConfig(samples_per_shard=8))
    args = f"train pbe --dataset orpht --store {store} --run-name o1 --steps 500 --workers 1".split()
    args += ["--resolution", "128", "--batch-size", "2", "--no-register"]
    proc, mark = start(args, tmp_path)
    wait_for_text(proc, tmp_path, "train pbe: step ")  # rank 0 trains; its progress reaches the driver
    kids = psutil.Process(proc.pid).children(recursive=True)
    assert any("ray::" in cmdline(k) for k in kids)
    quiet_terminal((tmp_path / "cli.log").read_text())
    run = RunDir(store, "pbe", "o1")
    kill_and_check(proc, mark, kids)
    steps = run.steps()
    time.sleep(1)
    assert run.steps() == steps  # nobody writes to the run any more
    if run.read_json(LEASE) is not None:  # the killed launch's lease: its pid is gone, taken over at once
        RunLease(run).acquire()
