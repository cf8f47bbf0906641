"""Per-sample randomness as a pure function of (dataset seed, ImageID, box, variant).

Every random draw of a sample comes from one generator seeded here, so a sample's bytes never
depend on which worker built it, in which order, or what else that worker built before.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_seed(dataset_seed: int, image_id: str, box_key: str, variant: int) -> int:
    """A 63-bit seed; fits Parquet int64 and albumentations' seed argument."""
    h = hashlib.sha256(f"{dataset_seed}|{image_id}|{box_key}|{variant}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def sample_seeds(jobs, dataset_seed: int) -> list[int]:
    """`sample_seed` of every row of a jobs frame (image_id, box_key, variant columns)."""
    cols = (jobs["image_id"], jobs["box_key"], jobs["variant"])
    return [sample_seed(dataset_seed, i, k, int(v)) for i, k, v in zip(*cols, strict=True)]


class SampleRng:
    """The draws PbE makes with Python's `random`, on a private numpy generator.

    `randint(a, b)` is inclusive on both ends like `random.randint`.
    """

    def __init__(self, seed: int) -> None:
        self.gen = np.random.default_rng(seed)

    def randint(self, a: int, b: int) -> int:
        if b < a:
            raise ValueError(f"empty range [{a}, {b}]")
        return int(self.gen.integers(a, b + 1))

    def uniform(self) -> float:
        return float(self.gen.random())

    def child_seed(self) -> int:
        """A seed for a library that wants its own (albumentations)."""
        return int(self.gen.integers(0, 2**31 - 1))
