"""heldout_split: deterministic, stable under adding ids, fraction respected."""

from __future__ import annotations

import hashlib

import pytest
from doodleflow.training.eval.split import heldout_split, is_heldout


def test_deterministic_and_matches_the_hash_rule():
    ids = [f"img{i}" for i in range(500)]
    a = heldout_split(ids, 0.2, seed=3)
    assert a == heldout_split(reversed(ids), 0.2, seed=3)
    by_hand = {i for i in ids if int(hashlib.sha256(f"3:{i}".encode()).hexdigest(), 16) < 0.2 * 2**256}
    assert a == by_hand
    assert all(is_heldout(i, 0.2, seed=3) == (i in a) for i in ids)


def test_adding_ids_never_moves_existing_ones():
    old = [f"a{i}" for i in range(1000)]
    new = old + [f"b{i}" for i in range(1000)]
    held_old, held_new = heldout_split(old), heldout_split(new)
    assert held_new & set(old) == held_old


def test_fraction_roughly_respected_and_seed_changes_split():
    ids = [str(i) for i in range(10_000)]
    held = heldout_split(ids, 0.1)
    assert 900 <= len(held) <= 1100  # binomial sd = 30
    assert held != heldout_split(ids, 0.1, seed=1)
    assert heldout_split(ids, 0.0) == set()
    assert heldout_split(ids, 1.0) == set(ids)
    with pytest.raises(ValueError):
        heldout_split(ids, 1.5)
