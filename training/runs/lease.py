"""One writer per run directory: a lease file naming its holder, kept fresh by a heartbeat.

A launch holds `runs/<family>/<run>/lease.json` while its workers train. Another launch of the same
run (`--resume`, or the same run name started twice) is refused while the holder lives, with a line
naming the holder, and takes the lease over once the holder is gone:

- on the same host, the holder's pid no longer runs (or is another process: its start time differs),
  which is known at once after a SIGKILL;
- elsewhere, its heartbeat is older than `STALE_AFTER_S`.

The file lives in the store (a local path or s3://), so launches on different machines see it. Two
launches taking over a stale lease at the same instant both write theirs; each reads it back after a
short pause and the one whose write did not stick stops (LostRace) before its workers start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from doodleflow.infra.errors import LostRace

LEASE = "lease.json"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
SETTLE_S = 0.3  # read-back delay that settles two simultaneous take-overs


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None if it does not run): with the pid it
    names one process, so a reused pid is not mistaken for the holder."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else fields[19].decode()


def holder_alive(lease: dict, now: float, stale_after: float = STALE_AFTER_S) -> bool:
    """Whether the lease's holder may still be writing."""
    if lease.get("host") == socket.gethostname() and lease.get("pid_start") is not None:
        return _start_time(int(lease["pid"])) == lease["pid_start"]
    return now - float(lease.get("heartbeat", 0)) < stale_after


def ray_job_id() -> str | None:
    """The Ray job this process belongs to (a driver and its workers share it), if Ray is running."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_job_id()


def check_writer(run, job: str | None) -> None:
    """Rank 0, before it writes a checkpoint: the lease must still be its own driver's (the same Ray
    job, `job` = ray_job_id(); None outside Ray: nothing to compare). A worker whose driver is gone
    and whose run was taken over (`--resume`) stops here instead of racing the new launch's writes."""
    cur = run.read_json(LEASE)
    if job and cur and cur.get("ray_job") and cur["ray_job"] != job:
        raise LostRace(
            f"run {run.run_id}: the lease is held by another launch (pid {cur.get('pid')} on "
            f"{cur.get('host')}); this worker of Ray job {job} stops without writing"
        )


class RunLease:
    """The lease of one run directory (a training/runs/rundir.RunDir)."""

    def __init__(self, run, stale_after: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.run, self.stale_after, self.heartbeat_s = run, stale_after, heartbeat_s
        self.owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: dict | None = None  # the lease that replaced ours, if another launch took over

    def record(self) -> dict:
        pid = os.getpid()
        return {"owner": self.owner, "pid": pid, "pid_start": _start_time(pid), "host": socket.gethostname(),
                "ray_job": ray_job_id(), "heartbeat": time.time()}  # fmt: skip

    def acquire(self, log: Callable[[str], None] = lambda m: None) -> None:
        """Take the lease, or raise LostRace naming the live holder."""
        cur = self.run.read_json(LEASE)
        if cur and cur.get("owner") != self.owner:
            if holder_alive(cur, time.time(), self.stale_after):
                raise LostRace(self._held_by(cur))
            log(
                f"run {self.run.run_id}: taking over the lease of pid {cur.get('pid')} on {cur.get('host')} (gone)"
            )
        self.run.write_json(LEASE, self.record())
        time.sleep(SETTLE_S)
        now = self.run.read_json(LEASE) or {}
        if now.get("owner") != self.owner:
            raise LostRace(self._held_by(now))

    def _held_by(self, cur: dict) -> str:
        age = time.time() - float(cur.get("heartbeat", 0))
        return (
            f"run {self.run.run_id} is being written by pid {cur.get('pid')} on {cur.get('host')} "
            f"(heartbeat {age:.0f} s ago): wait for it to finish or stop it, then pass --resume "
            f"(a holder that is gone is taken over at once on its host, after {self.stale_after:.0f} s elsewhere)"
        )

    def beat(self) -> bool:
        """Refresh the heartbeat; False (and `lost` set) if another launch holds the lease now."""
        cur = self.run.read_json(LEASE)
        if cur and cur.get("owner") != self.owner:
            self.lost = cur
            return False
        self.run.write_json(LEASE, self.record())
        return True

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):  # a store hiccup: the next beat tries again
                if not self.beat():
                    return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        cur = self.run.read_json(LEASE)
        if cur and cur.get("owner") == self.owner:
            self.run.fs.rm(self.run.path(LEASE))


@contextlib.contextmanager
def hold(run, log: Callable[[str], None] = lambda m: None, **kw) -> Iterator[RunLease]:
    """Hold `run`'s lease for the block, heartbeating in a daemon thread; released on the way out."""
    lease = RunLease(run, **kw)
    lease.acquire(log)
    lease._thread = threading.Thread(target=lease._beat_loop, name="run-lease", daemon=True)
    lease._thread.start()
    try:
        yield lease
    finally:
        lease.release()
    if lease.lost is not None:
        raise LostRace(
            f"run {run.run_id}: another launch took the lease over while this one ran ({lease.lost})"
        )
