"""Helpers of the PhotoDoodle tests (plain functions; fixtures are in conftest.py)."""

from __future__ import annotations

import os

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "photodoodle"
)
PHOTO = os.path.join(FIXTURES, "1.png")


def make_pair_dataset(
    root: str, store: str, name: str, n: int, style: str | None = None, seed: int = 0
) -> dict:
    """A committed pair dataset of `n` synthetic pairs (one style, named `style` or `name`)."""
    from data.pairs import ingest_pairs
    from data.pairs_synthetic import write_photodoodle_style

    src = os.path.join(root, f"src-{name}")
    write_photodoodle_style(src, style or name, n, seed=seed, photo_path=PHOTO)
    return ingest_pairs(src, name, store)
