"""What every trainer's typed config shares: dict round-trips, section-wise copies, and the short
hash that names a run after what changes its learned weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json


class SectionedConfig:
    """Mixed into a frozen dataclass whose fields are per-concern dataclasses (model, optim, ...)."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections):
        """Copy with some fields changed, e.g. `cfg.replace(run={"steps": 10})`."""
        out = {k: dataclasses.replace(getattr(self, k), **v) for k, v in sections.items()}
        return dataclasses.replace(self, **out)


def short_hash(ident: dict) -> str:
    """10 hex digits of the sha256 of `ident` as canonical JSON."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
