"""Aspect-ratio buckets: each pair trains at the bucket nearest its own aspect, at the run's pixel budget.

PhotoDoodle's loader resizes every pair to one size, 768x512 (h x w), without crop (showlab/PhotoDoodle
`src/jsonl_datasets.py`, C4): a square or landscape pair is stretched. Here the budget is the run's
height x width (393,216 px for flux-dev's 768x512, 6,144 px for the tiny preset's 96x64: the same rule
at both), and a bucket is an (h, w) of multiples of 16 (8x VAE, then 2x2 patches) whose area is nearest
the budget for its width (or height), no more elongated than `MAX_ASPECT`. A pair goes to the bucket
nearest its aspect (in log ratio), so 768x512 pairs land exactly on the reference size.
`aspect="stretch"` keeps the reference behaviour: one bucket, the configured size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

MULTIPLE = 16  # FLUX: 8x VAE downsampling, then 2x2 latent patches
MAX_ASPECT = 4.0  # longer side / shorter side of the most elongated bucket

Size = tuple[int, int]  # (height, width) in pixels


def round_to(x: float, m: int = MULTIPLE) -> int:
    """The multiple of `m` nearest `x` (at least `m`)."""
    return max(m, round(x / m) * m)


@lru_cache(maxsize=64)
def bucket_sizes(budget: int, multiple: int = MULTIPLE, max_aspect: float = MAX_ASPECT) -> tuple[Size, ...]:
    """Every bucket of a pixel budget: for each width (and, transposed, each height) a multiple of
    `multiple`, the other side is the multiple nearest budget / side; sorted by aspect (h / w)."""
    out: set[Size] = set()
    side = multiple
    while side * multiple <= budget:
        other = round_to(budget / side, multiple)
        if max(side / other, other / side) <= max_aspect:
            out.add((other, side))
            out.add((side, other))
        side += multiple
    return tuple(sorted(out, key=lambda s: (s[0] / s[1], s[0])))


@dataclass(frozen=True)
class Buckets:
    """The sizes a run trains at and the pixel budget they were made for."""

    budget: int
    sizes: tuple[Size, ...]

    @classmethod
    def for_run(cls, height: int, width: int, aspect: str) -> Buckets:
        """Every bucket of height x width ("bucket"), or that size alone ("stretch", the reference)."""
        if aspect == "stretch":
            return cls(height * width, ((height, width),))
        return cls(height * width, bucket_sizes(height * width))

    def assign(self, width: int, height: int) -> Size:
        """The bucket nearest an image's aspect (|log(h/w) - log(bh/bw)|); ties go to the area
        nearest the budget, then the smaller height. With one bucket (stretch), that one."""
        if len(self.sizes) == 1:
            return self.sizes[0]
        a = math.log(height / width)
        return min(
            self.sizes,
            key=lambda s: (round(abs(math.log(s[0] / s[1]) - a), 12), abs(s[0] * s[1] - self.budget), s),
        )


def label(size: Size) -> str:
    """'HxW', how logs and counts name a bucket."""
    return f"{size[0]}x{size[1]}"
