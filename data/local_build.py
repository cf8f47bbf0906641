"""Build work units without Prefect: in this process, or in a local process pool.

The in-process refresh and pair ingest (the library's and the tests' entry points) use this; the
Prefect flows map the same build functions as tasks (tasks/shards.py). Either way each unit is built
by one call that is idempotent (a unit whose shard is in the store returns its stats at once).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from doodleflow.data.report import ShardProgress


def build_locally(
    build: Callable[..., dict],
    units: Sequence,
    args: tuple,
    total: int,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
    noun: str = "samples",
) -> list[dict]:
    """`build(unit, *args)` for every unit; stats in unit order. `workers` > 1 runs a pool of fresh
    (spawned) processes: forking a process that holds Arrow or OpenMP threads can deadlock."""
    progress = ShardProgress(len(units), total, noun)
    results: dict[str, dict] = {}

    def done(s: dict) -> None:
        results[s["key"]] = s
        if log is not None:
            log(progress.line(s))

    if workers <= 1 or len(units) <= 1:
        for u in units:
            done(build(u, *args))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(units)), mp_context=ctx) as pool:
            for fut in as_completed([pool.submit(build, u, *args) for u in units]):
                done(fut.result())
    return [results[u.key] for u in units]
