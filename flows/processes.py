"""Every process a command starts dies with it, even when the command is killed with SIGKILL.

A command starts many processes it does not spawn directly: Prefect's API server, the task pool's
workers and multiprocessing's resource tracker, Ray's GCS, raylet and workers (started by the raylet,
not by us). None of them can be told to die with the command by the command itself once it has been
SIGKILLed, and `PR_SET_PDEATHSIG` only covers a process's direct children. So:

- `install()` marks the command with a token in the environment (`DOODLEFLOW_RUN_TOKENS`); every
  process started after that inherits it, whoever starts it (Ray's workers inherit the raylet's).
- It starts one small reaper process (stdlib only, its own session so Ctrl-C and a closed terminal
  leave it alone) that waits on the command's pid (a pidfd: no pid reuse), noting the command's
  descendants every second meanwhile (Ray starts its GCS and raylet with a parent-death signal: they
  die with the command, and their children lose the parent that linked them to it). When the
  command is gone - any exit, SIGKILL included - the reaper sends SIGTERM to every process carrying
  the token and to every descendant it noted (by pid and start time), then SIGKILL to what is left
  after a grace period, and rescans for stragglers spawned in between.
- `kill_with_parent()` is the direct-child half (a process we Popen ourselves, e.g. the Prefect API
  server): the kernel signals it the moment its parent dies.

FiftyOne's database service is spared: it is shared by every process using the same database and
ends itself once the last of them is gone. A Ray cluster the command only joins (an address) is not
ours: Ray ends the job's workers and actors when their driver goes (job ownership), and
training/runs/lease.py keeps a killed run's orphaned writer off a resumed run's directory.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import uuid

ENV = "DOODLEFLOW_RUN_TOKENS"
GRACE_S = 2.0  # SIGTERM -> SIGKILL: Prefect's server closes SQLite, Ray's raylet ends its workers
_PR_SET_PDEATHSIG = 1
_installed: str | None = None


def install() -> str | None:
    """Start this process's reaper once; returns its token (None where /proc is missing: not Linux)."""
    global _installed
    if _installed is not None or not os.path.isdir("/proc/self"):
        return _installed
    token = uuid.uuid4().hex[:16]
    env = dict(os.environ)
    env.pop(ENV, None)  # the reaper carries no token: no reaper kills another
    subprocess.Popen(
        [sys.executable, "-S", "-c", _REAPER, str(os.getpid()), token, str(GRACE_S)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    # Nested commands (the demo runs others) add theirs: each reaper clears its own and what is below.
    os.environ[ENV] = ":".join(t for t in (os.environ.get(ENV), token) if t)
    _installed = token
    return token


def kill_with_parent(sig: int = signal.SIGTERM) -> None:
    """`preexec_fn` for a child we Popen: the kernel sends it `sig` when this process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the reaper still covers it
        pass


# The reaper: stdlib only and started with -S, so it costs ~20 ms and a few MB. It collects the
# processes carrying the token and their descendants (Ray's raylet starts agents with an environment
# of its own), remembered by (pid, start time) across rounds: a child whose parent was killed first is
# reparented to init and could no longer be found by its parent.
_REAPER = r"""
import os, select, signal, sys, time
parent, token, grace = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
    signal.signal(s, signal.SIG_IGN)
needle, me = b"DOODLEFLOW_RUN_TOKENS=", os.getpid()
def table(env=True):
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            environ = b""
            if env:
                with open("/proc/%s/environ" % name, "rb") as f:
                    environ = f.read()
        except OSError:
            continue
        if fields[0] == b"Z":
            continue
        tokened = any(v.startswith(needle) and token in v[len(needle):].split(b":") for v in environ.split(b"\0"))
        procs[int(name)] = (int(fields[1]), fields[19], tokened)
    return procs
known = {}
spare = {}
def spared(pid):
    # FiftyOne's database service is shared by every process that uses the same database and ends
    # itself (and its mongod) once the last of them has exited: not ours to end.
    if pid not in spare:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            cmd = b""
        spare[pid] = b"fiftyone" in cmd and (b"service/main.py" in cmd or b"mongod" in cmd)
    return spare[pid]
def collect():
    procs = table()
    for pid, (ppid, start, tokened) in procs.items():
        if tokened and not spared(pid):
            known[pid] = start
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start, _) in procs.items():
            if ppid in known and pid not in known and not spared(pid):
                known[pid] = start
                grew = True
    return [pid for pid, start in known.items() if pid in procs and procs[pid][1] == start]
def watch():
    # Snapshot the command's descendants every second while it lives: Ray starts its GCS and raylet
    # with a parent-death signal, so they are gone before we wake, and their children with them.
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        fd = None
    while True:
        if fd is not None:
            if select.select([fd], [], [], 1.0)[0]:
                return
        else:
            time.sleep(1.0)
            if os.getppid() != parent:
                return
        procs = table(env=False)
        seen = {parent}
        grew = True
        while grew:
            grew = False
            for pid, (ppid, start, _) in procs.items():
                if ppid in seen and pid not in seen and not spared(pid):
                    seen.add(pid)
                    known[pid] = start
                    grew = True
watch()
def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
for _ in range(3):
    alive = collect()
    if not alive:
        break
    signal_all(alive, signal.SIGTERM)
    end = time.time() + grace
    while time.time() < end and collect():
        time.sleep(0.1)
    signal_all(collect(), signal.SIGKILL)
    time.sleep(0.3)
"""
