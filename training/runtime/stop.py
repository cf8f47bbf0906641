"""Stopping a training run on request: at the next step boundary, after a checkpoint, recorded as
cancelled (a Ctrl-C, a SIGTERM, a cancel in Prefect).

The driver and the workers are different processes (Ray Train V2 runs the loop in worker actors), so
the request travels through the run directory, like the progress does (training/runtime/progress.py):

- in the driver, `request(reason)` sets a process-wide event (the CLI's signal handler, flows/interrupt.py;
  the Prefect cancel watcher, tasks/stopping.py), and `relay(run)` (held by each launch around
  `TorchTrainer.fit`) writes `stop.json` into the run directory when it is set;
- in the workers, the step loop (training/runtime/loop.py) looks for that file at each step boundary on
  rank 0 and, with several workers, all-reduces the answer so every rank stops after the same step;
  it writes a checkpoint, `result.json` with `status: cancelled`, ends the MLflow run KILLED and
  returns, and the launch raises `Stopped`.

Light (no torch, Ray or Prefect): the CLI's signal handler imports it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from doodleflow.infra.errors import Stopped

FILE = "stop.json"
_event = threading.Event()
_reason: list[str] = []
_enabled = threading.Event()


def enable() -> None:
    """This process trains: a stop signal asks for a clean stop instead of interrupting at once."""
    _enabled.set()


def enabled() -> bool:
    return _enabled.is_set()


def request(reason: str) -> bool:
    """Ask every running job of this process to stop at its next step boundary; True the first time."""
    first = not _event.is_set()
    if first:
        _reason.append(reason)
        _event.set()
    return first


def requested() -> bool:
    return _event.is_set()


def reason() -> str:
    return _reason[0] if _reason else ""


def reset() -> None:
    """Forget a request (a process that runs several commands, e.g. tests calling the CLI in-process)."""
    _event.clear()
    _reason.clear()


def refuse_start(run_id: str) -> None:
    """A stop asked for before the job started: nothing was trained, nothing to checkpoint."""
    if requested():
        raise Stopped(f"run {run_id}: stopped before training started ({reason()})", run_id, None)


@contextlib.contextmanager
def relay(run, log: Callable[[str], None] = lambda m: None, poll_s: float = 0.2) -> Iterator[None]:
    """Driver, around the job: a stale stop.json of an earlier launch is removed first; when a stop is
    requested, stop.json is written for the workers to find."""
    if run.read_json(FILE) is not None:
        run.fs.rm(run.path(FILE))
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if _event.wait(poll_s):
                log(f"run {run.run_id}: stopping at the next step boundary ({reason()})")
                with contextlib.suppress(OSError):
                    run.write_json(FILE, {"reason": reason(), "time": time.time()})
                return

    thread = threading.Thread(target=watch, name="stop-relay", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def stopped_result(result: dict | None) -> Stopped | None:
    """The Stopped of a job whose result.json says it was cancelled, else None."""
    if not result or result.get("status") != "cancelled":
        return None
    return Stopped(
        f"run {result['run_id']} stopped at step {result['steps']} ({result.get('stop_reason') or 'on request'}); "
        f"checkpoint {result['checkpoint']}",
        result["run_id"],
        result["steps"],
    )
