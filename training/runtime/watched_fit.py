"""The driver's side of a Ray Train job, the same for every family: one writer per run (a live launch
of the same run is refused), rank 0's progress and samples shown here, a stop request (Ctrl-C,
SIGTERM, a cancel in Prefect) relayed to the workers (stop.py), and the run's result checked."""

from __future__ import annotations

from doodleflow.training.runs.lease import hold as hold_lease
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime import previews, progress, stop


def fit_watched(trainer, run: RunDir, steps: int, log) -> dict:
    """`trainer.fit()` (a Ray `TorchTrainer`) for `run`; its result.json once it reached `steps`.
    A stopped run raises `Stopped` (checkpointed, resumable); a run short of `steps` is an error."""
    stop.refuse_start(run.run_id)
    with (
        hold_lease(run, log),
        progress.follow(run, progress.emitter(log)),
        previews.follow(run, log),
        stop.relay(run, log),
    ):
        trainer.fit()
    result = run.read_json("result.json")
    if stop.requested() and (stopped := stop.stopped_result(result)) is not None:
        raise stopped
    if result is None or result["steps"] != steps:
        raise RuntimeError(f"run {run.run_id} ended without reaching step {steps}")
    return result
