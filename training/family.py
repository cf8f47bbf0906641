"""What a model family provides, in one place: the one interface the shared launcher, the registry and
the commands reach a family through.

A family is a `Family` entry in `FAMILIES` naming the module that implements `FamilyHooks`
(`training/<family>/family.py`). The table holds import paths, not modules: light code (the CLI
parser, the registry) reads a family's names and kinds without importing torch or the family's
model code, and no module of `training/common` or `training/registry` imports a family package
(tests/architecture/test_layering.py: no cycle). The families differ only where the papers differ;
everything else (the Ray launch, the trainer set-up, the epoch source and its resume rule, the latent
cache, run storage, tracking) is shared code in `training/common`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from doodleflow.infra.errors import ConfigError
from doodleflow.training.registry.refs import EDITLORA, MERGED_BASE, OMNIEDITOR_LORA, PBE_CHECKPOINT


class FamilyHooks(Protocol):
    """What `training/<family>/family.py` defines (module-level names). Each hook is documented
    where it is implemented; this lists them in one place."""

    def config_class(self) -> type:  # its frozen TrainConfig (training/common/config.py sections + its own)
        ...

    def base_dirs(self, kind: str, card: dict) -> list[str]:  # frozen weights an artifact loads with
        ...


@dataclass(frozen=True)
class Family:
    name: str  # "pbe", "photodoodle"
    dataset_kind: str  # the dataset kind it trains on (data/ writes it into the manifest)
    kinds: tuple[str, ...]  # the registry kinds it produces (training/registry/refs.py)
    hooks_module: str  # the module implementing FamilyHooks

    def hooks(self) -> Any:
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
