"""Training flags as data: each option names the config field it sets, and takes its default from the
family's config (training/<family>/config.py), so `--help`, the flows, the deployments and the pipeline
share one set of defaults. The flags become one nested dict of settings, from which the family's
`TrainConfig.from_dict` builds (and validates) the config before any server or cluster starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """`(default: X)` after each option's help, except where there is no value to show (None, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        hidden = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if hidden or "default:" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


@dataclass(frozen=True)
class Opt:
    flag: str  # "--lr"
    field: str  # "optim.lr": section.field of the family's config
    help: str
    type: Callable[[str], Any] | None = None  # a type or a parse function, as argparse takes
    choices: tuple | None = None
    flag_only: bool = False  # a store_true flag
    derived: str | None = None  # the default follows other settings (said here); the flag's default is None


def get_field(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


class _Given(argparse.Action):
    """Notes the flag in `namespace.given` when it is on the command line: `--resume` tells a flag the
    user passed (checked against the run's record) from a default (the record's value is used)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        namespace.given = {*(getattr(namespace, "given", None) or ()), self.dest}


class _Store(_Given, argparse._StoreAction):
    pass


class _StoreTrue(_Given, argparse._StoreTrueAction):
    pass


def add_options(p: argparse.ArgumentParser, opts: list[Opt], defaults) -> None:
    """Add `opts` to `p`, each with the value `defaults` (a config) has for its field."""
    for o in opts:
        default = None if o.derived else get_field(defaults, o.field)
        help_ = f"{o.help} (default: {o.derived})" if o.derived else o.help
        if o.flag_only:
            p.add_argument(o.flag, action=_StoreTrue, default=bool(default), help=help_)
        else:
            p.add_argument(o.flag, action=_Store, type=o.type, choices=o.choices, default=default, help=help_)


def dest(o: Opt) -> str:
    return o.flag.lstrip("-").replace("-", "_")


def given_overrides(a: argparse.Namespace, opts: list[Opt]) -> dict:
    """`overrides` of the flags on the command line only (not their defaults)."""
    given = getattr(a, "given", None) or set()
    return overrides(a, [o for o in opts if dest(o) in given])


def flag_names(opts: list[Opt]) -> dict[str, str]:
    """config field -> its flag, for messages."""
    return {o.field: o.flag for o in opts}


def overrides(a: argparse.Namespace, opts: list[Opt]) -> dict:
    """{section: {field: value}} from the parsed flags (values of `model.source.*` come nested)."""
    out: dict = {}
    for o in opts:
        *path, name = o.field.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        value = getattr(a, dest(o))
        if value is not None or not o.derived:
            node[name] = value
    return out
