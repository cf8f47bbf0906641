"""A training run's live progress, from rank 0 to the driver, through the run directory.

Rank 0 writes `progress.json` (step, total, loss, rate, ETA and the step line) at most every
`INTERVAL_S` and at the last step; the driver follows it (`follow`) and shows it where users look:
the Prefect run (a progress artifact and log lines, flows/progress.py) and one line on the terminal.
The file is in the store, so this works the same on a cluster whose workers' output never reaches
the driver (Ray's log forwarding is off: library noise stays in the workers' log files).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from doodleflow.training.runs.metrics import format_line

FILE = "progress.json"
INTERVAL_S = 3.0
_state: dict[str, dict] = {}  # per run directory: first step seen and last write


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def record(run, rec: dict, total: int, now: float | None = None) -> dict | None:
    """Rank 0, each logged step: write progress.json if INTERVAL_S passed (or at the last step)."""
    now = time.time() if now is None else now
    st = _state.setdefault(run.uri(), {"t0": now, "s0": rec["step"], "last": 0.0})
    if rec["step"] < total and now - st["last"] < INTERVAL_S:
        return None
    st["last"] = now
    done, elapsed = rec["step"] - st["s0"], now - st["t0"]
    eta = (total - rec["step"]) * elapsed / done if done > 0 and elapsed > 0 else None
    p = {"step": rec["step"], "total": total, "loss": rec["loss"], "samples_per_s": rec["samples_per_s"],
         "eta_s": eta, "time": now, "line": f"{format_line(rec, total)} | ETA {eta_text(eta)}"}  # fmt: skip
    run.write_json(FILE, p)
    return p


@contextlib.contextmanager
def follow(run, emit: Callable[[dict], None], every_s: float = 2.0, file: str = FILE) -> Iterator[None]:
    """Driver: call `emit(progress)` for each new progress.json (or `file`) of `run` while the block
    runs, and once more at the end with the last one."""
    stop = threading.Event()
    seen = {"time": None}
    since = time.time()

    def poll() -> None:
        with contextlib.suppress(Exception):  # progress is best effort: never fails the run
            p = run.read_json(file)
            if p and p.get("time") != seen["time"] and p.get("time", 0) >= since - 1:
                seen["time"] = p["time"]
                emit(p)

    def loop() -> None:
        while not stop.wait(every_s):
            poll()

    t = threading.Thread(target=loop, name="progress-follow", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)
        poll()


_sinks: list[Callable[[dict], None]] = []


@contextlib.contextmanager
def reporting(emit: Callable[[dict], None]) -> Iterator[None]:
    """Send the progress of the jobs launched in this block to `emit` (e.g. a Prefect progress
    artifact, tasks/progress.py) instead of the training log."""
    _sinks.append(emit)
    try:
        yield
    finally:
        _sinks.remove(emit)


def emitter(log: Callable[[str], None]) -> Callable[[dict], None]:
    """What the driver does with each progress.json: the registered sinks, else one log line."""

    def emit(p: dict) -> None:
        for sink in list(_sinks) or [lambda p: log(p["line"])]:
            sink(p)

    return emit
