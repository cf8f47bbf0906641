"""Where the test suite's time and CPU go: a pytest plugin that charges each test the machine's busy
core-seconds (from /proc/stat, so Ray's daemons and workers, Prefect servers and CLI subprocesses
count, which pytest's own rusage misses) and prints them per file, with the whole run's busy cores.

    .venv/bin/python -m pytest -p bench.suite_cpu            # serial: per-file figures are exact
    .venv/bin/python -m pytest -p bench.suite_cpu -n 2 --dist loadfile   # totals only mean much

Run it on a quiet machine: anything else running is charged to the tests. Figures: docs/benchmarks.md
("Test suite")."""

from __future__ import annotations

import os
import time
from collections import defaultdict

_TICK = os.sysconf("SC_CLK_TCK")
_per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
_open: dict[str, tuple[float, float]] = {}
_run: list[float] = []


def busy_core_seconds() -> float:
    """CPU seconds spent by every process on the machine since boot (user, nice, system, irq)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / _TICK


def pytest_sessionstart(session) -> None:
    _run[:] = [time.time(), busy_core_seconds()]


def pytest_runtest_logstart(nodeid, location) -> None:
    _open[nodeid] = (time.time(), busy_core_seconds())


def pytest_runtest_logfinish(nodeid, location) -> None:
    t0, c0 = _open.pop(nodeid, (time.time(), busy_core_seconds()))
    row = _per_file[nodeid.split("::")[0]]
    row[0] += time.time() - t0
    row[1] += busy_core_seconds() - c0


def pytest_terminal_summary(terminalreporter) -> None:
    if not _run:
        return
    wall, cpu = time.time() - _run[0], busy_core_seconds() - _run[1]
    w = terminalreporter
    w.section("suite cpu (bench/suite_cpu.py)")
    w.line(f"run: {wall:.0f} s wall, {cpu:.0f} busy core-s, {cpu / wall:.2f} of {os.cpu_count()} cores busy")
    if _per_file:  # under -n files overlap, and each is charged the other worker's CPU too
        w.line(f"{'wall s':>7} {'core-s':>7} {'cores':>5}  file (the 15 costliest)")
        for f, (fw, fc) in sorted(_per_file.items(), key=lambda kv: -kv[1][1])[:15]:
            w.line(f"{fw:7.1f} {fc:7.1f} {fc / max(fw, 1e-9):5.2f}  {f}")
