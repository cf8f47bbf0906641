"""What every trainer's typed config shares: dict round-trips, section-wise copies, the short hash that
names a run after what changes its learned weights, the run settings both families have, and the
checks that refuse a bad value before anything starts (ConfigError: one line naming the setting)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from doodleflow.data.names import validate_name
from doodleflow.infra.errors import ConfigError


class SectionedConfig:
    """Mixed into a frozen dataclass whose fields are per-concern dataclasses (model, optim, ...)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # for type checkers: it is mixed into dataclasses

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections):
        """Copy with some fields changed, e.g. `cfg.replace(run={"steps": 10})`."""
        out = {k: dataclasses.replace(getattr(self, k), **v) for k, v in sections.items()}
        return dataclasses.replace(self, **out)

    def with_overrides(self, overrides: dict | None):
        """Copy with settings changed by section ({"optim": {"lr": 1e-4}}); unknown names are refused."""
        sections = {f.name for f in dataclasses.fields(self)}
        for section, values in (overrides or {}).items():
            if section not in sections:
                raise ConfigError(f"unknown config section {section!r} (one of {sorted(sections)})")
            known = {f.name for f in dataclasses.fields(getattr(self, section))}
            unknown = set(values) - known
            if unknown:
                raise ConfigError(f"unknown {section} setting(s): {sorted(unknown)} (known: {sorted(known)})")
        return self.replace(**{s: dict(v) for s, v in (overrides or {}).items()})


def short_hash(ident: dict) -> str:
    """10 hex digits of the sha256 of `ident` as canonical JSON."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


# -- checks ----------------------------------------------------------------------------------------
def require(ok: bool, setting: str, problem: str) -> None:
    """Refuse a setting: `setting` is the CLI flag (or config field) a user changes to fix it."""
    if not ok:
        raise ConfigError(f"{setting} {problem}")


def at_least(value, low, setting: str) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    require(
        number and math.isfinite(value) and value >= low, setting, f"must be at least {low}, got {value!r}"
    )


def positive(value, setting: str) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    require(
        number and math.isfinite(value) and value > 0, setting, f"must be a positive number, got {value!r}"
    )


def one_of(value, choices, setting: str) -> None:
    require(value in tuple(choices), setting, f"must be one of {', '.join(map(str, choices))}; got {value!r}")


def multiple_of(value: int, step: int, low: int, high: int, setting: str) -> None:
    ok = isinstance(value, int) and low <= value <= high and value % step == 0
    require(ok, setting, f"must be a multiple of {step} between {low} and {high}, got {value!r}")


def check_optim(o) -> None:
    """AdamW and schedule settings of either family."""
    positive(o.lr, "--lr")
    at_least(o.eps, 0, "optim.eps")
    at_least(o.weight_decay, 0, "optim.weight_decay")
    at_least(o.warmup_steps, 0, "--warmup-steps")
    at_least(o.grad_clip, 0, "optim.grad_clip")
    require(
        len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
        "optim.betas",
        f"must be two values in [0, 1), got {o.betas!r}",
    )


def check_warmup(warmup_steps: int, steps: int, lr: float, start_factor: float = 0.0) -> None:
    """Refuse a warm-up longer than the run: its learning rate would never reach `--lr` (PbE's
    reference 10,000-step warm-up on a 100-step run left step 4 at 3e-9 of 1e-5). Refused rather than
    scaled: `steps` is left out of the run id so that `--resume --steps N` may extend a run, and a
    warm-up scaled to the steps would change the schedule of the steps already trained."""
    if warmup_steps > steps:
        end = lr * (start_factor + (1 - start_factor) * steps / warmup_steps)
        raise ConfigError(
            f"--warmup-steps {warmup_steps} is longer than the run (--steps {steps}): the learning rate "
            f"would end at {end:.2g} instead of --lr {lr:g}; pass --warmup-steps {steps // 10} "
            f"(a tenth of the run) or fewer, or train longer"
        )


@dataclass(frozen=True)
class RunSettings:
    """What runs, where, for how long and on how many workers: the same for every family."""

    store: str = ""
    dataset: str = ""
    version: int = 0  # 0 = the latest
    steps: int = 100
    checkpoint_every: int | None = 50
    keep_checkpoints: int = 2
    log_every: int = 1
    seed: int = 0
    run_name: str | None = None
    workers: int = 1  # Ray Train workers; 0 = in-process local mode (one replica)
    use_gpu: bool = False
    resume: bool = False
    # Fault injection for recovery tests: the last rank raises once at each of these steps.
    fail_at_step: int | list[int] | None = None

    def __post_init__(self) -> None:
        if self.dataset:
            validate_name(self.dataset, "dataset name")
        if self.run_name is not None:
            validate_name(self.run_name, "run name (--run-name)")
        at_least(self.steps, 1, "--steps")
        at_least(self.version, 0, "--version")
        at_least(self.workers, 0, "--workers")
        at_least(self.seed, 0, "--seed")
        at_least(self.keep_checkpoints, 1, "keep_checkpoints")
        at_least(self.log_every, 1, "log_every")
        if self.checkpoint_every is not None:
            at_least(self.checkpoint_every, 1, "--checkpoint-every")


@dataclass(frozen=True)
class SampleSettings:
    """Samples while a run trains (training/common/previews.py): every `every` steps (0 = off) rank 0
    edits `inputs` held-out inputs with the current weights, the same seeds each time, and adds a column
    to the run's grid. Not part of what is learned: left out of the run id, and training is
    bit-identical with sampling on or off. Each family sets its defaults (its config.py)."""

    every: int = 0
    first: bool = True  # also sample at step 0, the weights before training
    inputs: int = 4  # held-out inputs, one grid row each
    prompts: tuple[str, ...] = ()  # PhotoDoodle: the user's own instructions, on the first input
    steps: int = 20  # sampler steps
    guidance: float = 3.5
    seed: int = 0
    tile: int = 160  # grid tile size in pixels

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        at_least(self.every, 0, "--sample-every")
        at_least(self.inputs, 0, "sample.inputs")
        at_least(self.steps, 1, "sample.steps")
        at_least(self.guidance, 0, "sample.guidance")
        at_least(self.seed, 0, "sample.seed")
        multiple_of(self.tile, 16, 32, 1024, "sample.tile")
        require(all(p.strip() for p in self.prompts), "--sample-prompt", "must not be empty")
