"""Paint-by-Example's step loop: the shared loop (training/common/loop.py); the replicas compare
the trainable denoiser (UNet + PbE head)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from doodleflow.training.common.loop import StepLoop, WorkerContext
from doodleflow.training.common.loop import train as run_loop
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.pbe.trainer import PbETrainer

__all__ = ["PbELoop", "WorkerContext", "train"]


class PbELoop(StepLoop):
    def trainable_state(self):
        return self.t.model.trainable_state_dict()


def train(trainer: PbETrainer, run: RunDir, epoch_batches: Callable[[int], Iterable], ctx: WorkerContext):
    """Resume if the run has a checkpoint, train to `cfg.run.steps`, and return the result (rank 0)."""
    return run_loop(PbELoop(trainer, run, ctx), epoch_batches)
