"""A checkpoint a person picked (`doodleflow registry register --run RUN --step N`): the training run
found in the store, its checkpoint at that step, and the loss it had there. One-line errors for an
unknown run, a run still training and a step without a checkpoint (naming the steps that have one).
Checkpoints at sampling points keep their weights when pruned (training/runs/rundir.py), so a step
shown in the run's grid of samples can be registered."""

from __future__ import annotations

import time
from dataclasses import dataclass

from doodleflow.infra.errors import ConfigError, NotFoundError
from doodleflow.training.runs.lease import LEASE, holder_alive
from doodleflow.training.runs.metrics import MetricsLog
from doodleflow.training.runs.rundir import RunDir, read_checkpoint_state

FAMILIES = ("pbe", "omnieditor", "editlora")


@dataclass
class Picked:
    run: RunDir
    step: int
    checkpoint: str  # the checkpoint directory's URI
    state: dict  # its state.json (the run's config under "config")
    final_loss: float | None  # the loss logged at that step

    @property
    def family(self) -> str:
        return self.run.family


def find_run(store: str, ref: str) -> RunDir:
    """`FAMILY/RUN` or a bare run id looked up under every family's runs/ in the store."""
    from doodleflow.data.names import validate_name

    family, _, run_id = ref.rpartition("/")
    if family and family not in FAMILIES:
        raise ConfigError(f"--run {ref}: unknown family {family!r} (one of {', '.join(FAMILIES)})")
    validate_name(run_id, "run id (--run)")
    found = [RunDir(store, f, run_id) for f in ([family] if family else FAMILIES)]
    found = [r for r in found if r.read_json("run.json") is not None or r.steps()]
    if not found:
        raise NotFoundError(f"no training run {ref!r} in {store} (runs/<family>/<run id>, family one of "
                            f"{', '.join(FAMILIES)})")  # fmt: skip
    if len(found) > 1:
        names = ", ".join(f"{r.family}/{run_id}" for r in found)
        raise ConfigError(f"--run {ref} names several runs ({names}): give one as FAMILY/RUN")
    return found[0]


def pick(store: str, ref: str, step: int) -> Picked:
    run = find_run(store, ref)
    key = f"{run.family}/{run.run_id}"
    lease = run.read_json(LEASE)
    if lease and run.read_json("result.json") is None and holder_alive(lease, time.time()):
        raise ConfigError(
            f"run {key} is still training: register a step once it has finished or was cancelled"
        )
    steps = run.steps()
    if step not in steps:
        have = (
            f"its checkpoints are at steps {', '.join(map(str, steps))}" if steps else "it has no checkpoint"
        )
        raise NotFoundError(f"run {key} has no checkpoint at step {step}: {have}")
    uri = run.uri(run.checkpoint_path(step))
    losses = {r["step"]: r["loss"] for r in MetricsLog.load(run)}
    return Picked(run, step, uri, read_checkpoint_state(uri), losses.get(step))
