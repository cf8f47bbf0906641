"""Ctrl-C and SIGTERM stop a training command cleanly: the run at its next step boundary, with a
checkpoint, and every process gone soon after. (The other commands are interrupted as before.)

A terminal's Ctrl-C sends SIGINT to every process of its foreground process group. A command's
children would get it too: Prefect's API server (it died at once, and the command then sat in
Prefect's exit-time drain with ~100 processes for minutes), and Ray's processes, which Ray starts in
the command's group (and some of which ignore SIGINT). So the process the terminal started is a small
supervisor (`supervise`): it runs the real command as its child in a session of its own, which no
terminal signal reaches, and relays the signals it gets:

- the first SIGINT, SIGTERM or SIGHUP becomes SIGUSR1 to the command, which asks its training jobs to
  stop at the next step boundary (training/runtime/stop.py; a command that trains nothing is
  interrupted as Ctrl-C would have: KeyboardInterrupt). SIGUSR1 because Prefect's flow engine takes
  SIGTERM over for itself while a flow runs;
- a second one becomes SIGINT (stop now, without the checkpoint), a third SIGKILL.

The command's exit status is the supervisor's. The command dies with the supervisor (a parent-death
signal): a SIGKILL to the supervisor still leaves nothing behind (flows/processes.py's reaper ends
the rest).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

ENV = "DOODLEFLOW_SUPERVISOR"
STOP_SIGNAL = signal.SIGUSR1
RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def supervise() -> int | None:
    """In the process a user started for a training command: run the command as a child in its own
    session, relay stop signals, return its exit status. None in the command itself, for the other
    commands, and where /proc is missing."""
    if os.environ.get(ENV) or not os.path.isdir("/proc/self") or sys.argv[1:2] != ["train"]:
        return None  # the command itself; or one that trains nothing: Ctrl-C interrupts it as before
    from doodleflow.flows.processes import kill_with_parent

    child = subprocess.Popen(
        [sys.executable, *sys.orig_argv[1:]],
        env={**os.environ, ENV: str(os.getpid())},
        start_new_session=True,
        preexec_fn=lambda: kill_with_parent(signal.SIGKILL),
    )
    sent = []

    def relay(sig: int, frame) -> None:
        sent.append(sig)
        order = (STOP_SIGNAL, signal.SIGINT, signal.SIGKILL)
        child.send_signal(order[min(len(sent), len(order)) - 1])

    for sig in RELAYED:
        signal.signal(sig, relay)
    rc = child.wait()
    return 128 - rc if rc < 0 else rc


def install_stop_handler() -> None:
    """In the command: the supervisor's SIGUSR1 asks for a clean stop (a training command) or
    interrupts (any other)."""
    signal.signal(STOP_SIGNAL, _on_stop)


def _on_stop(sig: int, frame) -> None:
    from doodleflow.training.runtime import stop

    if not stop.enabled():
        raise KeyboardInterrupt
    if stop.request("Ctrl-C or SIGTERM"):  # the job says it stops (training/runtime/stop.py:relay)
        print("doodleflow: Ctrl-C again stops at once, without a checkpoint", file=sys.stderr, flush=True)


def resume_hint(a, run_id: str) -> str:
    """The command that continues a stopped run: the run's record holds every other setting."""
    who = " ".join(f"--{k} {getattr(a, k)}" for k in ("artist", "dataset") if getattr(a, k, None))
    store = f" --store {a.store}" if getattr(a, "store", None) else ""
    return f"doodleflow {a.command} {a.target} {who} --run-name {run_id} --resume{store}".replace("  ", " ")
