"""Training flags as data: each option names the config field it sets, and takes its default from the
family's config (training/<family>/config.py), so `--help`, the flows, the deployments and the pipeline
share one set of defaults. The flags become one nested dict of settings, from which the family's
`TrainConfig.from_dict` builds (and validates) the config before any server or cluster starts.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


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
    type: type | None = None
    choices: tuple | None = None
    flag_only: bool = False  # a store_true flag
    derived: str | None = None  # the default follows other settings (said here); the flag's default is None


def get_field(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def add_options(p: argparse.ArgumentParser, opts: list[Opt], defaults) -> None:
    """Add `opts` to `p`, each with the value `defaults` (a config) has for its field."""
    for o in opts:
        default = None if o.derived else get_field(defaults, o.field)
        help_ = f"{o.help} (default: {o.derived})" if o.derived else o.help
        if o.flag_only:
            p.add_argument(o.flag, action="store_true", default=bool(default), help=help_)
        else:
            p.add_argument(o.flag, type=o.type, choices=o.choices, default=default, help=help_)


def overrides(a: argparse.Namespace, opts: list[Opt]) -> dict:
    """{section: {field: value}} from the parsed flags (values of `model.source.*` come nested)."""
    out: dict = {}
    for o in opts:
        *path, name = o.field.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        value = getattr(a, o.flag.lstrip("-").replace("-", "_"))
        if value is not None or not o.derived:
            node[name] = value
    return out
