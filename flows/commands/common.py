"""Arguments shared by several commands."""

from __future__ import annotations

import argparse


def add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        help="local path or s3://bucket/prefix (default: $DOODLEFLOW_STORE or $DOODLEFLOW_HOME/store)",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="end stdout with one JSON object")


def add_dataset(p: argparse.ArgumentParser, required: bool = False, help: str = "dataset name") -> None:
    p.add_argument(
        "--dataset",
        required=required,
        help=f"{help}: 1-64 letters, digits, '_', '-' or '.' (`doodleflow datasets` lists them)",
    )


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same result")


def check_source_and_names(a: argparse.Namespace, names: dict[str, str]) -> None:
    """The checks every data command makes before anything starts: each `names` flag (attribute ->
    what it names) is a valid name, the store URI is usable, a local --source is a directory."""
    import os

    from doodleflow.data.names import validate_name
    from doodleflow.infra.errors import ConfigError
    from doodleflow.infra.settings import resolve_store

    for attr, what in names.items():
        if getattr(a, attr, None) is not None:
            validate_name(getattr(a, attr), what)
    resolve_store(getattr(a, "store", None))
    source = getattr(a, "source", None)
    if source and "://" not in source and not os.path.isdir(source):
        raise ConfigError(f"--source {source}: no such directory")


def at_least(value: int | None, low: int, flag: str) -> None:
    from doodleflow.infra.errors import ConfigError

    if value is not None and value < low:
        raise ConfigError(f"{flag} must be >= {low}, got {value}")


def json_safe(obj):
    """NaN and infinities as null: JSON has no NaN, and a bare `NaN` breaks every strict parser."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
