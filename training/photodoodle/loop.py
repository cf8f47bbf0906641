"""PhotoDoodle's step loop: the shared loop (training/common/loop.py); the replicas compare the
LoRA, MFU counts the encoded batch, and rank 0 publishes the LoRA after the last step."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from doodleflow.training.common.loop import StepLoop, WorkerContext
from doodleflow.training.common.loop import train as run_loop
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.photodoodle.lora import trainable_state_dict
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

__all__ = ["PhotoDoodleLoop", "WorkerContext", "train"]


class PhotoDoodleLoop(StepLoop):
    def trainable_state(self):
        return trainable_state_dict(self.t.model.transformer)

    def measure_flops(self, batch) -> int:
        enc = batch(self.t.generator(0)) if callable(batch) else self.t.encode(batch, self.t.generator(0))
        return self.t.flops_per_sample(enc)

    def result_extra(self, final_loss: float | None) -> dict:
        publish = self.ctx.publish
        card = publish(self.t, {"steps": self.t.step, "final_loss": final_loss}) if publish else {}
        cfg = self.t.cfg.run
        return {"stage": cfg.stage, "artist": cfg.artist, "lora": card.get("uri"), "lora_card": card}


def train(
    trainer: PhotoDoodleTrainer, run: RunDir, epoch_batches: Callable[[int], Iterable], ctx: WorkerContext
):
    """Resume if the run has a checkpoint, train to `cfg.run.steps`, publish, return the result (rank 0)."""
    return run_loop(PhotoDoodleLoop(trainer, run, ctx), epoch_batches)
