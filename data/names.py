"""Validation of user-given names that become path components in the store (datasets, artists)."""

from __future__ import annotations

import re

from doodleflow.infra.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_name(name: str, what: str = "name") -> str:
    """A name is 1-64 of [A-Za-z0-9_.-], starting alphanumeric, with no '..': it can never climb out
    of the folder it is joined to, nor hide as a dotfile."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter "
            "or digit, without '..'"
        )
    return name
