"""One writer per run directory: a live holder refuses a second launch with a line naming it; a holder
that is gone (killed: its pid no longer runs; elsewhere: a stale heartbeat) is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from doodleflow.infra.errors import LostRace
from doodleflow.training.runs import lease
from doodleflow.training.runs.lease import LEASE, RunLease, hold
from doodleflow.training.runs.rundir import RunDir


def _within(seconds: float, done) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir(str(tmp_path / "store"), "pbe", "r1")


def test_a_live_holder_refuses_a_second_launch_and_releases_on_exit(run):
    with hold(run) as first:
        held = run.read_json(LEASE)
        assert held["owner"] == first.owner and held["host"] == socket.gethostname()
        with pytest.raises(LostRace, match=r"run r1 is being written by pid \d+ on .*--resume"):
            RunLease(run).acquire()
    assert run.read_json(LEASE) is None  # released


def test_a_killed_holder_is_taken_over_at_once(run):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rec = RunLease(run).record() | {"pid": proc.pid, "pid_start": lease._start_time(proc.pid)}
        run.write_json(LEASE, rec)
        with pytest.raises(LostRace):
            RunLease(run).acquire()
    finally:
        proc.kill()
        proc.wait()
    taker = RunLease(run)
    msgs = []
    taker.acquire(msgs.append)
    assert run.read_json(LEASE)["owner"] == taker.owner and "taking over" in msgs[0]


def test_a_reused_pid_is_not_the_holder(run):
    rec = RunLease(run).record() | {"pid_start": "1"}  # this pid, but a process that started at tick 1
    run.write_json(LEASE, rec)
    RunLease(run).acquire()


def test_a_holder_elsewhere_is_judged_by_its_heartbeat(run):
    rec = {"owner": "x", "pid": 1, "pid_start": "5", "host": "elsewhere", "heartbeat": time.time()}
    run.write_json(LEASE, rec)
    with pytest.raises(LostRace, match="on elsewhere"):
        RunLease(run, stale_after=60).acquire()
    run.write_json(LEASE, rec | {"heartbeat": time.time() - 61})
    RunLease(run, stale_after=60).acquire()


def test_the_heartbeat_keeps_the_lease_fresh_and_notices_a_take_over(run):
    with pytest.raises(LostRace, match="took the lease over"), hold(run, heartbeat_s=0.1) as mine:
        t0 = run.read_json(LEASE)["heartbeat"]
        # Polled, not slept: a loaded machine (make test runs two workers on 2 cores) can hold the
        # 0.1 s heartbeat thread off the CPU for longer than a fixed sleep.
        assert _within(10, lambda: run.read_json(LEASE)["heartbeat"] > t0)
        run.write_bytes(LEASE, json.dumps({"owner": "other", "heartbeat": time.time()}).encode())
        assert _within(10, lambda: mine.lost is not None)
        assert mine.lost["owner"] == "other"
    assert run.read_json(LEASE)["owner"] == "other"  # not ours to remove


def test_a_worker_of_another_launch_stops_before_it_writes(run):
    from doodleflow.training.runs.lease import check_writer

    run.write_json(LEASE, RunLease(run).record() | {"ray_job": "02000000"})
    check_writer(run, job="02000000")  # its own driver's lease: writes
    check_writer(run, job=None)  # not under Ray: nothing to compare
    with pytest.raises(LostRace, match="this worker of Ray job 01000000 stops without writing"):
        check_writer(run, job="01000000")  # an orphan of the killed launch, after a resume took over
