"""Model references (`NAME` for the latest version, `NAME@alias`, `NAME:version`) and the kinds of
registered artifact. Light to import: the CLI's parser uses both."""

from __future__ import annotations

import re
from dataclasses import dataclass

from doodleflow.infra.errors import ConfigError

_REF = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})(?:@(?P<alias>[A-Za-z][A-Za-z0-9_-]{0,63})|:(?P<version>\d+))?$"
)


# The kinds of registered artifact: every module names them through these constants.
PBE_CHECKPOINT = "pbe-checkpoint"
OMNIEDITOR_LORA = "omnieditor-lora"
MERGED_BASE = "merged-base"
EDITLORA = "editlora"
KINDS = (PBE_CHECKPOINT, OMNIEDITOR_LORA, MERGED_BASE, EDITLORA)


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else f":{self.version}" if self.version else "")


def parse_ref(text: str) -> ModelRef:
    m = _REF.match(text or "")
    if not m:
        raise ConfigError(f"invalid model reference {text!r}: use NAME, NAME@alias or NAME:version")
    return ModelRef(m["name"], m["alias"], int(m["version"]) if m["version"] else None)
