"""Deterministic held-out split by image id (PbE) or pair id (PhotoDoodle).

An item is held out iff sha256(f"{seed}:{id}") < fraction * 2**256. Each id is decided on its own, so
adding images to a dataset version never moves an existing image between train and eval, and the
split is reproducible from (ids, fraction, seed) alone: the manifest only has to record those.

Training and evaluation both ask `split_of(manifest)`, so the rows a trainer skips are exactly the
rows the evaluator scores. A manifest written before the split was recorded (no "heldout" entry, e.g.
every PhotoDoodle pair version) gets the default split, `defaulted=True`, which callers log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from doodleflow.infra.errors import ConfigError

DEFAULT_FRACTION = 0.1


def _threshold(fraction: float) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"held-out fraction must be in [0, 1], got {fraction}")
    # float * 2**256 is finite (~1.2e77) and int() of it is exact, so the cut is a fixed integer.
    return int(fraction * 2**256)


def is_heldout(image_id: str, fraction: float = DEFAULT_FRACTION, seed: int = 0) -> bool:
    """True if `image_id` falls in the held-out split (see the module docstring)."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest, "big") < _threshold(fraction)


def heldout_split(image_ids: Iterable[str], fraction: float = DEFAULT_FRACTION, seed: int = 0) -> set[str]:
    """The held-out subset of `image_ids`: about `fraction` of them, stable under adding ids."""
    cut = _threshold(fraction)
    out: set[str] = set()
    for image_id in image_ids:
        digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
        if int.from_bytes(digest, "big") < cut:
            out.add(str(image_id))
    return out


@dataclass(frozen=True)
class Split:
    """The split of one dataset version: which id column it is decided on, and its parameters."""

    fraction: float = DEFAULT_FRACTION
    seed: int = 0
    defaulted: bool = False  # the manifest did not record the split: these are the defaults

    def heldout_mask(self, ids) -> np.ndarray:
        """Boolean mask over `ids` (any sequence of strings): True where the id is held out. Each
        distinct id is hashed once (an image has several samples)."""
        arr = np.asarray(ids, dtype=object)
        if arr.size == 0:
            return np.zeros(0, dtype=bool)
        uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
        cut = _threshold(self.fraction)
        held = np.fromiter(
            (int.from_bytes(hashlib.sha256(f"{self.seed}:{u}".encode()).digest(), "big") < cut for u in uniq),
            dtype=bool,
            count=len(uniq),
        )
        return held[inverse.reshape(-1)]

    def describe(self) -> str:
        how = " (the manifest records no split: default parameters)" if self.defaulted else ""
        return f"held-out split fraction {self.fraction}, seed {self.seed}{how}"


def split_of(manifest: dict) -> Split:
    """The split a dataset version's manifest records; the default one (fraction 0.1, the curation
    seed, or 0) when it records none. The evaluators (training/eval/pbe.py, photodoodle.py) use the
    same parameters, so what training leaves out is what evaluation scores."""
    h = manifest.get("heldout")
    if h and "fraction" in h and "seed" in h:
        return Split(float(h["fraction"]), int(h["seed"]))
    seed = int((manifest.get("config") or {}).get("seed", 0))
    return Split(DEFAULT_FRACTION, seed, defaulted=True)
