"""One training-step benchmark case, shared by bench/train_step.py and its model entries
(bench/photodoodle_step.py): its own module, so that neither imports the other for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Case:
    name: str
    batch_size: int
    step: Callable[[], None]  # one optimizer step on a fixed batch
    flops_per_sample: int
