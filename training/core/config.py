"""What every trainer's typed config shares: dict round-trips, section-wise copies, the short hash that
names a run after what changes its learned weights, the sections both families have (optimizer, run,
samples, publishing, launch) and what a whole training config does with them (the batch plan, the
checks across sections, building one from defaults and overrides), and the checks that refuse a bad
value before anything starts (ConfigError: one line naming the setting).

A family's config.py (training/pbe/config.py, training/photodoodle/config.py) subclasses these
sections, changing a default where its recipe differs and adding its own fields; its `TrainConfig`
lists its sections and says how its run id is made."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from doodleflow.data.names import validate_name
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.batching import BatchPlan, batch_plan


class SectionedConfig:
    """Mixed into a frozen dataclass whose fields are per-concern dataclasses (model, optim, ...)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # for type checkers: it is mixed into dataclasses

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Self:
        """The config `to_dict` gave (or any part of it): each section built from its field types, a
        missing section or setting taking its default. Keys beside the sections are ignored (records
        carry extra keys); an unknown setting inside a section is refused by that section's class."""
        return _build(cls, d, ignore_unknown=True)

    def replace(self, **sections):
        """Copy with some fields changed, e.g. `cfg.replace(run={"steps": 10})`."""
        out = {k: dataclasses.replace(getattr(self, k), **v) for k, v in sections.items()}
        return dataclasses.replace(self, **out)

    def with_overrides(self, overrides: dict | None):
        """Copy with settings changed by section ({"optim": {"lr": 1e-4}}); unknown names are refused."""
        known = {
            f.name: [g.name for g in dataclasses.fields(getattr(self, f.name))]
            for f in dataclasses.fields(self)
        }
        refuse_unknown(known, overrides or {}, name_known=True)
        return self.replace(**{s: dict(v) for s, v in (overrides or {}).items()})


def refuse_unknown(known: Mapping[str, Collection[str]], overrides: Mapping, name_known: bool) -> None:
    """ConfigError for a section not in `known` or a setting its section lacks (`name_known`: the
    message lists the section's settings)."""
    for section, values in overrides.items():
        if section not in known:
            raise ConfigError(f"unknown config section {section!r} (one of {sorted(known)})")
        unknown = set(values) - set(known[section])
        if unknown:
            tail = f" (known: {sorted(known[section])})" if name_known else ""
            raise ConfigError(f"unknown {section} setting(s): {sorted(unknown)}{tail}")


@functools.cache
def _types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_tuple(tp) -> bool:
    """`tuple[...]`, alone or in a union (`tuple[int, int] | None`)."""
    if typing.get_origin(tp) is tuple:
        return True
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return union and any(typing.get_origin(a) is tuple for a in typing.get_args(tp))


def _value(tp, v):
    """A stored value as its field's type wants it: a dict for a dataclass field becomes that dataclass,
    a list for a tuple field a tuple (JSON has no tuples); anything else as it is."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(v, Mapping):
        return _build(tp, v, ignore_unknown=False)
    if isinstance(v, list) and _is_tuple(tp):
        return tuple(v)
    return v


def _build(cls, d: Mapping, ignore_unknown: bool):
    """`cls(**d)` with its fields converted in field order (so the first bad setting named is the
    same whatever the order of `d`); keys that are not fields go to `cls` too unless ignored."""
    hints = _types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {k: _value(hints[k], d[k]) for k in names if k in d}
    if not ignore_unknown:
        kwargs.update({k: v for k, v in d.items() if k not in kwargs})
    return cls(**kwargs)


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
class OptimSettings:
    """AdamW and its schedule, both families' optimizer. lr, betas, eps and weight decay default to
    torch's AdamW, clipping to 1.0 and no warm-up (both families' defaults); a family overrides what its
    recipe changes (its config.py says where the values come from)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # 0 disables
    warmup_steps: int = 0  # linear warm-up to --lr, then constant

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        check_optim(self)

    @property
    def warmup_start(self) -> float:
        """The fraction of --lr the warm-up starts from (a family with a setting for it overrides)."""
        return 0.0


@dataclass(frozen=True)
class LaunchSettings:
    """Where the job runs; not part of what is learned."""

    ray_address: str | None = None  # None: $RAY_ADDRESS, else a local Ray
    max_failures: int = 2  # worker-group restarts (from the latest checkpoint) before the job fails
    # GiB per GPU the memory plan must fit (training/memplan/limits.py); None: read from the GPUs
    gpu_memory: float | None = None

    def __post_init__(self) -> None:
        at_least(self.max_failures, 0, "launch.max_failures")
        if self.gpu_memory is not None:
            positive(self.gpu_memory, "--gpu-memory")


@dataclass(frozen=True)
class PublishSettings:
    """After training: evaluate on held-out inputs (training/eval/spec.py), then register with lineage."""

    register: bool = True
    evaluate: bool = True
    eval_samples: int = 4  # held-out samples to evaluate
    eval_steps: int = 50  # sampler steps per evaluated sample
    eval_clip: str | None = None  # CLIP ViT-B/32 dir for the CLIP scores (None: tiny random)

    def __post_init__(self) -> None:
        at_least(self.eval_samples, 1, "--eval-samples")
        at_least(self.eval_steps, 1, "--eval-steps")


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
    """Samples while a run trains (training/runtime/previews.py): every `every` steps (0 = off) rank 0
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


class TrainSettings(SectionedConfig):
    """Mixed into a family's `TrainConfig` (a frozen dataclass of its sections): what a whole training
    config does the same in every family. The family sets MAX_MICRO_BATCH (its reference's batch per
    GPU), may add checks across its sections (`check_family`), and makes its run id."""

    MAX_MICRO_BATCH: ClassVar[int] = 1
    # The sections every family has (for type checkers; each family declares them as fields).
    optim: OptimSettings
    run: RunSettings
    data: Any  # a family's DataConfig: batch_size, micro_batch

    def batch_plan(self, world: int | None = None) -> BatchPlan:
        """The global batch over `world` workers (default: the configured workers)."""
        workers = self.run.workers if world is None else world
        return batch_plan(self.data.batch_size, workers, self.data.micro_batch, self.MAX_MICRO_BATCH)

    def check(self) -> Self:
        """What no single section can check: the global batch splits over the workers, the warm-up
        fits in the run; then the family's own checks."""
        self.batch_plan()
        o = self.optim
        check_warmup(o.warmup_steps, self.run.steps, o.lr, o.warmup_start)
        self.check_family()
        return self

    def check_family(self) -> None:
        """A family's checks across its sections (none by default)."""

    @classmethod
    def build(cls, overrides: dict | None = None, **run) -> Self:
        """Defaults + `overrides` by section ({"optim": {"lr": 1e-4}, ...}) + run fields as keywords
        (None: left as it is)."""
        base = cls().to_dict()
        refuse_unknown(base, overrides or {}, name_known=False)
        for section, values in (overrides or {}).items():
            base[section].update(values)
        base["run"].update({k: v for k, v in run.items() if v is not None})
        return cls.from_dict(base)
