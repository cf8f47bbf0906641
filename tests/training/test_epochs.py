"""The one epoch source (training/core/epochs.py): for every shape of sequence, a source resumed
after k micro-batches hands the loop exactly the rest of the uninterrupted one, epochs included."""

from __future__ import annotations

import numpy as np
import pytest
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.epochs import Epochs, indexed, passes, tagged
from doodleflow.training.runtime.loop import epochs


def _drain(source: Epochs, n: int) -> list[tuple[int, object]]:
    """(epoch, micro-batch) of the first n draws, as the step loop takes them (a tagged batch by its id)."""
    stream = epochs(source, 0)
    return [(e, b["id"] if isinstance(b, dict) else b) for e, b in (next(stream) for _ in range(n))]


def _indexed():
    return indexed(3, lambda e: [f"e{e}-{i}" for i in range(3)])


def _passes():
    return passes(lambda e: iter([f"p{e}-{i}" for i in range(2 + e % 2)]))


def _tagged():
    # Rows carry their epoch; near a boundary a micro-batch mixes two (a shuffle buffer's tail).
    rows = [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3]
    batches = [{"epoch": np.array(rows[i : i + 2]), "id": i} for i in range(0, len(rows), 2)]
    return tagged(lambda: iter(batches))


@pytest.mark.parametrize("make", [_indexed, _passes, _tagged])
def test_a_resumed_source_draws_the_rest_of_the_uninterrupted_one(make):
    straight = _drain(Epochs(make(), lambda: 0), 9)
    for k in range(9):
        resumed = Epochs(make(), lambda k=k: k)
        assert _drain(resumed, 9 - k) == straight[k:], k
    assert [e for e, _ in straight] == sorted(e for e, _ in straight)  # epochs in order, from 0


def test_epochs_of_a_mixed_stream_open_at_the_first_micro_batch_of_a_later_epoch_only():
    labels = [e for e, _ in _drain(Epochs(_tagged(), lambda: 0), 9)]
    # batches (rows' epochs): 00 00 01 11 12 22 22 23 33: the mixed 01 and 12 stay in the current epoch
    assert labels == [0, 0, 0, 1, 1, 2, 2, 2, 3]


def test_a_converted_batch_is_made_only_for_what_is_trained_on():
    made: list[str] = []
    source = Epochs(_indexed(), lambda: 4, lambda b: made.append(b) or b)
    assert _drain(source, 2) == [(1, "e1-1"), (1, "e1-2")] and made == ["e1-1", "e1-2"]
    assert source.epoch == 1


def test_a_stream_that_runs_dry_or_an_empty_epoch_ends_the_run_with_one_line():
    short = Epochs(passes(lambda e: iter(["a", "b"] if e == 0 else [])), lambda: 0)
    stream = epochs(short, 0)
    assert [next(stream), next(stream)] == [(0, "a"), (0, "b")]
    with pytest.raises(ConfigError, match="an epoch produced no batch"):
        next(stream)
