"""Sizing a run to its GPU: the preset that fits, the largest micro-batch that fits, the refusal.

Presets are tried from the fewest savers to the most (80GB, 48GB, 24GB), so the suggestion changes
the least that makes the run fit. The micro-batch search keeps the global batch: a smaller micro-batch
is made up by gradient accumulation (training/core/batching.py).
"""

from __future__ import annotations

import json

from doodleflow.infra.errors import ConfigError
from doodleflow.training.memplan.limits import usable
from doodleflow.training.memplan.plan import MemoryPlan, plan_for

PRESETS = ("80GB", "48GB", "24GB")


_PLANS: dict[str, MemoryPlan] = {}


def cached_plan(cfg) -> MemoryPlan:
    """A config's plan, simulated once per process (the CLI's preflight and the job's launch share it;
    what the plan does not depend on, the run's name, steps or store, is left out of the key)."""
    d = cfg.to_dict()
    d.pop("publish", None)
    d.pop("launch", None)
    d["run"] = {k: v for k, v in d["run"].items() if k in ("stage", "workers", "use_gpu")}
    key = json.dumps(d, sort_keys=True, default=str)
    if key not in _PLANS:
        _PLANS[key] = plan_for(cfg)
    return _PLANS[key]


def fits(plan: MemoryPlan, limit_gib: float) -> bool:
    return plan.peak_gib <= usable(limit_gib)


def fitting_preset(cfg, limit_gib: float) -> tuple[str, MemoryPlan] | None:
    """The preset with the fewest savers whose plan fits (`--memory` names it)."""
    for preset in PRESETS:
        if float(preset[:-2]) > limit_gib:  # a preset for a larger card
            continue
        plan = cached_plan(cfg.replace(memory={"preset": preset}))
        if fits(plan, limit_gib):
            return preset, plan
    return None


def refuse_if_over(cfg, limit_gib: float, log=lambda msg: None) -> MemoryPlan:
    """The run's plan, logged; ConfigError (one line: the plan, the limit, the preset that fits) when over."""
    plan = cached_plan(cfg)
    log(f"{plan.line()}; GPU {limit_gib:g} GiB ({usable(limit_gib):.1f} usable)")
    if fits(plan, limit_gib):
        return plan
    found = None if cfg.memory.preset == "24GB" else fitting_preset(cfg, limit_gib)
    fix = (
        f"--memory {found[0]} plans {found[1].peak_gib:.1f} GiB"
        if found
        else "no memory preset fits: lower --micro-batch, the resolution or --rank"
    )
    raise ConfigError(
        f"memory plan {plan.peak_gib:.1f} GiB exceeds the {limit_gib:g} GiB GPU "
        f"({usable(limit_gib):.1f} GiB usable): {fix} (doodleflow plan train ... shows the parts)"
    )


def largest_micro_batch(cfg, limit_gib: float, cap: int = 64) -> tuple[int, MemoryPlan]:
    """The largest micro-batch dividing the worker's share of the global batch whose plan fits;
    ConfigError when not even 1 fits."""
    share = cfg.data.batch_size // max(cfg.run.workers, 1)
    best = None
    for micro in [d for d in range(1, min(share, cap) + 1) if share % d == 0]:
        plan = cached_plan(cfg.replace(data={"micro_batch": micro}))
        if not fits(plan, limit_gib):
            break
        best = (micro, plan)
    if best is None:
        raise ConfigError(
            f"--micro-batch auto: not even a micro-batch of 1 fits the {limit_gib:.0f} GiB GPU "
            f"({plan.peak_gib:.1f} GiB planned): choose a --memory preset"
        )
    return best
