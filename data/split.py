"""Deterministic held-out split by image id.

An image is held out iff sha256(f"{seed}:{image_id}") < fraction * 2**256. Each id is decided on its
own, so adding images to a dataset version never moves an existing image between train and eval, and
the split is reproducible from (ids, fraction, seed) alone: the manifest only has to record those.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from doodleflow.infra.errors import ConfigError


def _threshold(fraction: float) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"held-out fraction must be in [0, 1], got {fraction}")
    # float * 2**256 is finite (~1.2e77) and int() of it is exact, so the cut is a fixed integer.
    return int(fraction * 2**256)


def is_heldout(image_id: str, fraction: float = 0.1, seed: int = 0) -> bool:
    """True if `image_id` falls in the held-out split (see the module docstring)."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest, "big") < _threshold(fraction)


def heldout_split(image_ids: Iterable[str], fraction: float = 0.1, seed: int = 0) -> set[str]:
    """The held-out subset of `image_ids`: about `fraction` of them, stable under adding ids."""
    cut = _threshold(fraction)
    out: set[str] = set()
    for image_id in image_ids:
        digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
        if int.from_bytes(digest, "big") < cut:
            out.add(str(image_id))
    return out
