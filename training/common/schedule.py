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


def optimizer_step(trainer, loss) -> float:
    """Backward, clip (grad_clip <= 0: measure only), step, advance the schedule, zero the grads;
    returns the pre-clip gradient norm. `trainer` has params, optimizer, lr_schedule, cfg.optim."""
    import torch

    loss.backward()
    clip = trainer.cfg.optim.grad_clip
    norm = torch.nn.utils.clip_grad_norm_(trainer.params, clip if clip > 0 else float("inf"))
    trainer.optimizer.step()
    trainer.lr_schedule.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return float(norm)
