"""Learning-rate schedules as plain step -> factor functions (for torch's LambdaLR)."""

from __future__ import annotations

from collections.abc import Callable


def linear_warmup(warmup_steps: int, start_factor: float = 1e-6) -> Callable[[int], float]:
    """LDM's LambdaLinearScheduler with one cycle: linear from `start_factor` to 1 over
    `warmup_steps`, then constant (Paint-by-Example `configs/v1.yaml`, `ldm/lr_scheduler.py`)."""

    def factor(step: int) -> float:
        if warmup_steps <= 0 or step >= warmup_steps:
            return 1.0
        return start_factor + (1.0 - start_factor) * step / warmup_steps

    return factor
