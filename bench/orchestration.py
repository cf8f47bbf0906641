"""Orchestration overhead per work unit: N tiny units through the refresh's own build path.

    python bench/orchestration.py                  # 5,000 units, Prefect local pool and Ray (local)
    python bench/orchestration.py --units 500      # smoke run

Each unit is a task with the build-shard task's options (retries, retry condition, cache key, persisted
result) that writes an empty shard and its stats (the store writes a real unit ends with), run through
`tasks.shards.build_units` (submit all, as_completed, one progress log line per unit, the store check).
Overhead per unit = (wall(N) - wall(10)) / (N - 10) - the same writes done in a plain loop: what
orchestration adds to every unit. On a shared machine wall time is mostly waiting for a core, so the
CPU seconds of the whole process tree (this process, the Prefect server, pool workers, Ray) per unit are
reported too: on a machine of its own, that is what the overhead costs. Against the build time of a unit (`--unit-seconds`: 512 samples at
the per-core rate docs/benchmarks.md records), the driver-side overhead is a fraction
overhead * workers / unit_seconds of the build: printed for this machine and the cluster size where it
reaches 5%.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DOODLEFLOW_HOME", tempfile.mkdtemp(prefix="doodleflow-orch-"))

from doodleflow.data.store import DatasetStore
from doodleflow.data.units import WorkUnit
from doodleflow.flows import runtime  # noqa: F401  (environment defaults)
from doodleflow.flows.results import on_store
from doodleflow.flows.task_runners import make_task_runner
from doodleflow.infra.errors import retry_condition
from doodleflow.tasks.shards import build_units
from prefect import flow, get_run_logger, task

TARGET_FRACTION = 0.05


def _key(_ctx, params: dict) -> str:
    return f"tiny|{params['store']}|{params['unit'].key}"


@task(
    name="tiny-unit",
    retries=2,
    retry_delay_seconds=[1, 5],
    retry_condition_fn=retry_condition,
    cache_key_fn=_key,
    persist_result=True,
)
def tiny_unit(unit: WorkUnit, store: str, dataset: str) -> dict:
    return _write(unit, store, dataset)


def _write(unit: WorkUnit, store: str, dataset: str) -> dict:
    return DatasetStore(store, dataset).write_shard(unit.key, b"", {"rows": 0, "seconds": 0.0})


@flow(name="orchestration-bench")
def many(units: list[WorkUnit], store: str, dataset: str) -> int:
    build = on_store(tiny_unit, store)
    return len(build_units(build, units, (store, dataset), store, dataset, get_run_logger(), 0))


def _units(n: int, tag: str) -> list[WorkUnit]:
    return [WorkUnit(f"{tag}{i:020d}", "", i, 0, 0) for i in range(n)]  # never read: the task writes


class TreeCpu:
    """CPU seconds (user + sys) of this process and every descendant seen while it runs (sampled)."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me, start = psutil.Process(), True
        while not self.stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                # processes there at the start count from now (a Prefect server kept from an earlier
                # run); those born later count from zero
                self.first.setdefault(p.pid, t.user + t.system if start else 0.0)
                self.last[p.pid] = t.user + t.system
            start = False
            self.stop.wait(0.25)

    def __enter__(self) -> TreeCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)


def timed(runner_name: str, n: int, store: str) -> tuple[float, float]:
    runner = make_task_runner(2, "local" if runner_name == "ray" else None)
    units = _units(n, f"{runner_name[:2]}{n}-")
    with TreeCpu() as cpu:
        t0 = time.perf_counter()
        many.with_options(task_runner=runner)(units, store, "orch")
        wall = time.perf_counter() - t0
    return wall, cpu.seconds()


def plain(n: int, store: str) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for u in _units(n, f"pl{n}-"):
        _write(u, store, "orch")
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=5000)
    ap.add_argument("--runners", nargs="*", default=["prefect-pool", "ray"])
    ap.add_argument("--unit-seconds", type=float, default=512 / 20.0, help="build seconds of one unit")
    a = ap.parse_args(argv)
    store = tempfile.mkdtemp(prefix="orch-store-")
    work, work_cpu = (x / a.units for x in plain(a.units, store))
    print(f"plain loop: {1e3 * work:.2f} ms wall, {1e3 * work_cpu:.2f} ms CPU per unit (the store writes)")
    for name in a.runners:
        (s_wall, s_cpu), (b_wall, b_cpu) = timed(name, 10, store), timed(name, a.units, store)
        per = (b_wall - s_wall) / (a.units - 10) - work
        per_cpu = (b_cpu - s_cpu) / (a.units - 10) - work_cpu
        print(
            f"{name}: {a.units} units in {b_wall:.1f}s wall, {b_cpu:.1f}s CPU (10 units: {s_wall:.1f}s, "
            f"{s_cpu:.1f}s CPU): overhead per unit {1e3 * per:.1f} ms wall, {1e3 * per_cpu:.1f} ms CPU; "
            + ", ".join(
                f"{k} {100 * v * 2 / a.unit_seconds:.2f}%" for k, v in (("wall", per), ("CPU", per_cpu))
            )
            + f" of a {a.unit_seconds:.0f}s unit on 2 workers; 5% reached at "
            + f"{TARGET_FRACTION * a.unit_seconds / max(per_cpu, 1e-9):.0f} workers (CPU figure)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
