"""The batch recipe: a run's global batch split into workers x micro-batch x accumulation steps.

The config holds the global batch (what the optimizer sees per step, as the papers state it), so the
recipe does not change with the number of workers: `--workers 1` accumulates what `--workers 8` computes
in parallel. The per-worker micro-batch is set, or derived as the largest divisor of the worker's share
that fits the family's reference micro-batch (PbE: 4 per GPU; PhotoDoodle: 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from doodleflow.infra.errors import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    global_batch: int
    workers: int  # data-parallel replicas (local mode counts as one)
    micro_batch: int  # per worker and per forward/backward
    accumulation: int  # micro-batches per worker per optimizer step

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch} = {self.workers} worker(s) x micro-batch {self.micro_batch}"
            f" x {self.accumulation} accumulation step(s)"
        )

    def params(self) -> dict:
        """As recorded with the run (MLflow params, result.json)."""
        return {
            "global": self.global_batch,
            "micro": self.micro_batch,
            "accumulation": self.accumulation,
            "workers": self.workers,
        }


def batch_plan(
    global_batch: int, workers: int, micro_batch: int | None = None, max_micro: int = 1
) -> BatchPlan:
    """Split `global_batch` over `workers`; ConfigError (naming the flag to change) when it does not divide."""
    world = max(int(workers), 1)
    if global_batch < 1:
        raise ConfigError(f"--batch-size must be at least 1 (the global batch), got {global_batch}")
    if global_batch % world:
        raise ConfigError(
            f"--batch-size {global_batch} (the global batch) does not split over {world} worker(s): "
            f"use a multiple of {world}, or change --workers"
        )
    share = global_batch // world
    if micro_batch is None:
        micro_batch = max(d for d in range(1, min(share, max(max_micro, 1)) + 1) if share % d == 0)
    if micro_batch < 1 or share % micro_batch:
        raise ConfigError(
            f"--micro-batch {micro_batch} does not divide the {share} sample(s) each of {world} worker(s) "
            f"takes per step (--batch-size {global_batch}): use a divisor of {share}"
        )
    return BatchPlan(global_batch, world, micro_batch, share // micro_batch)
