"""Orchestration overhead per work unit: N tiny units through the refresh's own build path.

    python bench/orchestration.py                  # 5,000 units, Prefect local pool and Ray (local)
    python bench/orchestration.py --units 500      # smoke run

Each unit is a task with the build-shard task's options (retries, retry condition, cache key, persisted
result) that writes an empty shard and its stats (the store writes a real unit ends with), run through
`tasks.shards.build_units` (submit all, as_completed, one progress log line per unit, the store check).
Overhead per unit = (wall(N) - wall(10)) / (N - 10) - the same writes done in a plain loop: what
orchestration adds to every unit. Against the build time of a unit (`--unit-seconds`: 512 samples at
the per-core rate docs/benchmarks.md records), the driver-side overhead is a fraction
overhead * workers / unit_seconds of the build: printed for this machine and the cluster size where it
reaches 5%.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DOODLEFLOW_HOME", tempfile.mkdtemp(prefix="doodleflow-orch-"))

from doodleflow.data.plan import WorkUnit
from doodleflow.data.store import DatasetStore
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
    return [WorkUnit(f"{tag}{i:020d}", ()) for i in range(n)]


def timed(runner_name: str, n: int, store: str) -> float:
    runner = make_task_runner(2, "local" if runner_name == "ray" else None)
    units = _units(n, f"{runner_name[:2]}{n}-")
    t0 = time.perf_counter()
    many.with_options(task_runner=runner)(units, store, "orch")
    return time.perf_counter() - t0


def plain(n: int, store: str) -> float:
    t0 = time.perf_counter()
    for u in _units(n, f"pl{n}-"):
        _write(u, store, "orch")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=5000)
    ap.add_argument("--runners", nargs="*", default=["prefect-pool", "ray"])
    ap.add_argument("--unit-seconds", type=float, default=512 / 20.0, help="build seconds of one unit")
    a = ap.parse_args(argv)
    store = tempfile.mkdtemp(prefix="orch-store-")
    work = plain(a.units, store) / a.units
    print(f"plain loop: {1e3 * work:.2f} ms per unit (the store writes)", flush=True)
    for name in a.runners:
        small, big = timed(name, 10, store), timed(name, a.units, store)
        per = (big - small) / (a.units - 10) - work
        frac = per * 2 / a.unit_seconds
        cores = TARGET_FRACTION * a.unit_seconds / per if per > 0 else float("inf")
        print(
            f"{name}: {a.units} units in {big:.1f}s (10 units: {small:.1f}s): {1e3 * per:.1f} ms overhead per unit; "
            f"{100 * frac:.2f}% of a {a.unit_seconds:.0f}s unit on 2 workers; 5% at {cores:.0f} workers",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
