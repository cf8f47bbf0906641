"""Every family's hooks module (training/<family>/family.py) implements the whole interface
(training/family.py:FamilyHooks), hook by hook with the same parameters, and the registry finds each
kind's family."""

from __future__ import annotations

import inspect

import pytest
from doodleflow.infra.errors import ConfigError
from doodleflow.training.family import FAMILIES, FamilyHooks, family, family_of_kind
from doodleflow.training.registry.refs import EDITLORA, KINDS, MERGED_BASE, OMNIEDITOR_LORA, PBE_CHECKPOINT

HOOKS = sorted(n for n, v in vars(FamilyHooks).items() if callable(v) and not n.startswith("_"))


def test_the_interface_names_what_the_launcher_and_registry_call():
    launcher = ["config_class", "run_family", "plan", "scaling", "describe", "worker_config", "dataset"]
    registry = ["base_dirs"]
    assert sorted([*launcher, "worker", *registry]) == HOOKS


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_implements_every_hook(name):
    hooks = family(name).hooks()
    for hook in HOOKS:
        want = [p for p in inspect.signature(getattr(FamilyHooks, hook)).parameters if p != "self"]
        got = list(inspect.signature(getattr(hooks, hook)).parameters)
        assert got == want, f"training/{name}/family.py:{hook}{tuple(got)}, the interface says {tuple(want)}"
    assert hooks.config_class().__module__ == f"doodleflow.training.{name}.config"


def test_every_registry_kind_has_one_family():
    assert {k: family_of_kind(k).name for k in KINDS} == {
        PBE_CHECKPOINT: "pbe",
        OMNIEDITOR_LORA: "photodoodle",
        MERGED_BASE: "photodoodle",
        EDITLORA: "photodoodle",
    }
    with pytest.raises(ConfigError, match="no model family produces artifacts of kind 'x'"):
        family_of_kind("x")
