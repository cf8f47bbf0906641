"""What a model family provides, in one place: the one interface the shared launcher, the registry and
the commands reach a family through.

A family is a `Family` entry in `FAMILIES` naming the module that implements `FamilyHooks`
(`training/<family>/family.py`). The table holds import paths, not modules: light code (the CLI
parser, the registry) reads a family's names and kinds without importing torch or the family's
model code, and no module of the shared code (`training/core`, `runs`, `runtime`, `registry`) imports a family package
(tests/architecture/test_layering.py: no cycle). The families differ only where the papers differ;
everything else (the Ray launch, the trainer set-up, the epoch source and its resume rule, the latent
cache, run storage, tracking) is shared code in `training/core`, `training/runs` and `training/runtime`.

The hooks are what shared code calls: the launcher (training/runtime/launch.py) and the registry
(training/registry/bases.py). Model load, the loss and the cache encoder are reached through the
`worker` hook (the family's model.py, trainer.py, cache.py). Inference and evaluation are the family's
own entry points (training/eval/<family>.py and the sampler it calls), which flows/evaluate.py
picks by registry kind; no shared code calls them, so they are not hooks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from doodleflow.infra.errors import ConfigError
from doodleflow.training.registry.refs import EDITLORA, MERGED_BASE, OMNIEDITOR_LORA, PBE_CHECKPOINT


@dataclass
class WorkerEnv:
    """What the shared launcher's worker (training/runtime/launch.py) hands a family's `worker` hook."""

    rank: int
    world: int
    device: Any  # torch.device of this worker
    wrap: Callable | None  # DDP wrap of the trainable module (None on one worker)
    config: dict  # the train_loop_config: "train" (the config's dict) and the family's `worker_config`
    shard: Callable[[], Any]  # this worker's shard of the Ray Data stream (only when `dataset` gave one)


@dataclass
class WorkerParts:
    """What a family's worker trains with; the launcher makes the run folder and the tracker between
    building the trainer and asking for the previews and the epochs (the order the encoders need)."""

    trainer: Any  # a training/core/trainer.py Trainer (model loaded, DDP wrapped)
    epochs: Callable[[], Callable[[int], Iterable]]  # -> epoch -> that epoch's batches for this worker
    previews: Callable[[Any, Any], Any]  # (run, tracker) -> rank 0's samples while training
    save_final: Callable[[Any, dict], dict] | None = None  # rank 0 after the last step -> the artifact card


class FamilyHooks(Protocol):
    """What `training/<family>/family.py` defines (module-level functions). The shared launcher
    (training/runtime/launch.py) and the registry (training/registry/bases.py) call only these; each is
    implemented by delegating to the family's own modules, named at the hook."""

    # The config: its frozen TrainConfig (training/core/config.py sections + its own).
    def config_class(self) -> Any: ...

    # The run folder's family (runs/<it>/<run id>) and the MLflow experiment's.
    def run_family(self, cfg) -> str: ...

    # Driver, before Ray: pin the config, check the dataset and the run, the latent cache (built
    # first where the family builds it on Ray), the epochs: a training/runs/plan.py JobPlan, which
    # `describe`, `worker_config` and `dataset` take.
    def plan(self, cfg, log: Callable[[str], None]) -> Any: ...

    # Driver: (workers, Ray resources per worker or None) for ScalingConfig and the launch line.
    def scaling(self, cfg) -> tuple[int, dict | None]: ...

    # Driver: the launch line's words on the data ("N Parquet part(s) of D vV, ...").
    def describe(self, plan) -> str: ...

    # Driver: what the workers get besides the config (into the train_loop_config).
    def worker_config(self, plan, resources: dict | None) -> dict: ...

    # Driver: the Ray Data stream the workers shard, or None (every worker reads its own cache).
    def dataset(self, plan) -> Any: ...

    # Worker: model load, cache encoding, the trainer (its loss), the epochs, the previews, the artifact saved after the last step.
    def worker(self, cfg, env: WorkerEnv) -> WorkerParts: ...

    # Registry: the frozen weights a stored artifact of `kind` at `uri` loads with besides its files.
    def base_dirs(self, kind: str, uri: str) -> list[str]: ...


@dataclass(frozen=True)
class Family:
    name: str  # "pbe", "photodoodle"
    dataset_kind: str  # the dataset kind it trains on (data/ writes it into the manifest)
    kinds: tuple[str, ...]  # the registry kinds it produces (training/registry/refs.py)
    hooks_module: str  # the module implementing FamilyHooks

    def hooks(self) -> FamilyHooks:
        """The family's hooks module, imported on first use (it imports torch and the model code)."""
        return importlib.import_module(self.hooks_module)


FAMILIES: dict[str, Family] = {
    "pbe": Family("pbe", "pbe-triples", (PBE_CHECKPOINT,), "doodleflow.training.pbe.family"),
    "photodoodle": Family(
        "photodoodle",
        "photodoodle-pairs",
        (OMNIEDITOR_LORA, MERGED_BASE, EDITLORA),
        "doodleflow.training.photodoodle.family",
    ),
}


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r} (one of {sorted(FAMILIES)})") from None


def family_of_kind(kind: str) -> Family:
    """The family that produces registry kind `kind`."""
    for f in FAMILIES.values():
        if kind in f.kinds:
            return f
    raise ConfigError(f"no model family produces artifacts of kind {kind!r}")
