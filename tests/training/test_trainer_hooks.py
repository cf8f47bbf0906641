"""One trainer set-up (issue 20 item 1): the family trainers say only what differs. Neither restates the
shared constructor, step or checkpoint state of training/core/trainer.py; each overrides its hooks."""

from __future__ import annotations

import pytest
from doodleflow.training.core.trainer import Trainer
from doodleflow.training.pbe.trainer import PbETrainer
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

# What a family may say; everything else the base defines (set-up, train_step, apply_gradients,
# autocast, generator, state_tensors, load_state) is shared.
HOOKS = {
    "tf32",
    "prepare",
    "micro_loss",
    "trainable_weights",
    "load_trainable",
    "flops_per_sample",
    "optimizer_options",
    "result_extra",
}
REQUIRED = {"prepare", "micro_loss", "trainable_weights", "load_trainable", "flops_per_sample"}


@pytest.mark.parametrize("family", [PbETrainer, PhotoDoodleTrainer])
def test_a_family_trainer_overrides_only_the_hooks(family):
    shared = {name for name in vars(Trainer) if not name.startswith("__") or name == "__init__"}
    overridden = {name for name in vars(family) if name in shared}
    assert shared >= HOOKS
    assert overridden <= HOOKS, overridden - HOOKS
    assert overridden >= REQUIRED, REQUIRED - overridden
