"""Paint by Example's memory savers (training/core/memory.py): the 24GB preset's gradient
checkpointing and 8-bit AdamW state train the tiny model on the CPU, learn, and resume exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import pixel_batch
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.trainer import PbETrainer
from doodleflow.training.runs.rundir import RunDir

from .datasets import four_rows

FAST = {"optim": {"lr": 1e-3, "warmup_steps": 0}, "data": {"resolution": 128}}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return pixel_batch(four_rows(str(tmp_path_factory.mktemp("pbe-savers"))))


def _two(enc):
    """The first two samples: the savers' behaviour does not need four, the CPU seconds add up."""
    return dataclasses.replace(enc, **{f.name: getattr(enc, f.name)[:2] for f in dataclasses.fields(enc)})


def test_the_24gb_preset_checkpoints_and_keeps_8bit_state(tiny_dir, batch):
    cfg = TrainConfig().replace(**FAST, memory={"preset": "24GB"})
    assert cfg.savers(cuda=False).gradient_checkpointing and cfg.savers().optimizer == "adamw8bit"
    trainer = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    assert trainer.model.unet.is_gradient_checkpointing
    enc = _two(trainer.encode(batch))

    def held_loss() -> float:  # fixed noise and timesteps never trained on: a deterministic comparison
        with torch.no_grad():
            return sum(float(trainer.loss(enc, 10_000 + i)) for i in range(2)) / 2

    before = held_loss()
    losses = [trainer.train_step(enc)["loss"] for _ in range(4)]
    after = held_loss()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert after < before, (before, after)  # it learns with 8-bit moments too
    opt = trainer.optimizer
    assert type(opt).__name__ == "AdamW8bit"
    eight = {id(p) for p in trainer.params if type(opt.state[p]["exp_avg"]).__name__ == "OptimState8bit"}
    # torchao (as bitsandbytes) quantizes every tensor of >= 4096 values in whole 256-value blocks
    assert eight == {id(p) for p in trainer.params if p.numel() >= 4096 and p.numel() % 256 == 0}
    big = sum(p.numel() for p in trainer.params if id(p) in eight)
    assert big > 0.7 * sum(p.numel() for p in trainer.params)  # a full UNet: > 99%
    assert all(
        opt.state[p]["exp_avg_sq"].codes.dtype == torch.uint8 for p in trainer.params if id(p) in eight
    )


def test_8bit_state_round_trips_through_a_checkpoint(tiny_dir, batch, tmp_path):
    cfg = TrainConfig().replace(**FAST, memory={"optimizer": "adamw8bit"})
    a = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    enc = _two(a.encode(batch))
    a.train_step(enc)
    run = RunDir(str(tmp_path / "store"), "pbe", "q")
    run.write_checkpoint(a.step, *a.state_tensors())
    b = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    b.load_state(*run.read_checkpoint(1))
    assert a.train_step(enc)["loss"] == b.train_step(enc)["loss"]
    wa, wb = a.model.trainable_state_dict(), b.model.trainable_state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
