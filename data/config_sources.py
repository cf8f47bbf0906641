"""Settings for a typed config from where users write them: a config file (JSON, YAML or TOML), `--set
section.field=value` pairs, a flow parameter's dict. Each becomes one nested dict of overrides; `build`
turns such a dict into the frozen dataclass, checking every key and value type on the way, so a typo
is a one-line `ConfigError` naming the key instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing

from doodleflow.infra.errors import ConfigError


def load_file(path: str) -> dict:
    """A config file's settings as a nested dict: `.json`, `.yaml`/`.yml` or `.toml`."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".yaml", ".yml", ".toml"):
        raise ConfigError(f"--config {path}: use a .json, .yaml, .yml or .toml file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"--config {path}: {e.strerror or e}") from e
    try:
        if ext == ".json":
            data = json.loads(raw)
        elif ext == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode())
        else:
            import yaml

            data = yaml.safe_load(raw) or {}
    except Exception as e:  # every parser's own error type: the message names the file
        raise ConfigError(f"--config {path}: not valid {ext[1:].upper()}: {e}".splitlines()[0]) from e
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: the top level must be a mapping of settings")
    return data


def parse_sets(items: list[str] | None) -> dict:
    """`["boxes.min_area=0.05", "seed=3"]` -> {"boxes": {"min_area": 0.05}, "seed": 3}. A value is read
    as JSON when it parses (numbers, true/false, lists), else kept as the string."""
    out: dict = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: use --set section.field=value")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *path, name = key.strip().split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is a setting, not a section")
        node[name] = value
    return out


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, section by section (neither is changed)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build(cls: type, d: dict, where: str = ""):
    """The dataclass `cls` from a (partial) nested dict: absent fields keep their defaults; an unknown
    key or a value of the wrong type raises ConfigError naming `where` + the field's dotted path."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: expected a mapping of settings, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown setting {where}{unknown[0]} (known: {', '.join(sorted(names))})")
    return cls(**{k: _value(hints[k], v, f"{where}{k}") for k, v in d.items()})


def _value(hint, v, path: str):
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return v if isinstance(v, hint) else build(hint, v, path + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        return _value(hint, v, path)
    if origin is tuple:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {v!r}")
        return tuple(_value(args[0], x, path) for x in items)
    if hint is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if hint in (int, float, bool, str) and type(v) is not hint:
        raise ConfigError(f"{path}: expected {hint.__name__}, got {v!r}")
    return v
