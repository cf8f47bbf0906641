"""The one epoch source of every family, and its one resume rule. Pure Python (no Ray, no torch).

A worker's micro-batches form one sequence over the whole run, epoch after epoch, fixed by the data and
(seed, epoch, rank, world): a `RunSequence` is a function `skip -> (epoch, micro-batch), ...` from the
run's first micro-batch on, the first `skip` left out. The rule:

    a run resumed at optimizer step s has drawn s x accumulation micro-batches on every worker
    (training/runtime/loop.py takes `accumulation` per step); it draws the sequence from there on,
    so it trains on exactly the micro-batches the uninterrupted run would have, mid-epoch included.

The sequences differ only in how they skip:
- `indexed`: each epoch's micro-batches are known up front (an in-memory cache, PhotoDoodle's cached
  pairs): the consumed ones are skipped without being read (an epoch's length divides the position).
- `passes`: one pass over an iterator per epoch (PhotoDoodle's streamed pairs) and `tagged`: one pass
  over a continuous stream whose rows carry their epoch (Paint-by-Example's stream, training/pbe/
  stream.py): the consumed micro-batches are drawn again and dropped (`skipped`): a stream cannot seek.
  The Ray shards they read keep Ray Data's order (training/runtime/ray_utils.py `ordered_ingest`), so
  the replay is the same stream.

`Epochs` hands the step loop one epoch at a time and says which epoch its last micro-batch came from,
so a resumed run records the same epochs as the uninterrupted one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

RunSequence = Callable[[int], Iterator[tuple[int, Any]]]  # skip -> (epoch, micro-batch) from the run's start


class Epochs:
    """The loop's `epoch -> micro-batches` (training/runtime/loop.py) over one run-long `RunSequence`. Each
    call yields the micro-batches of the sequence's current epoch (the loop's argument is only a
    label: the sequence knows its epochs); `epoch` is the epoch of the last one yielded."""

    def __init__(
        self, sequence: RunSequence, position: Callable[[], int], convert: Callable[[Any], Any] | None = None
    ) -> None:
        self._sequence, self._position = sequence, position
        self._convert = convert or (lambda b: b)
        self._it: Iterator[tuple[int, Any]] | None = None
        self._held: tuple[int, Any] | None = None  # the first micro-batch of the next epoch
        self.epoch: int | None = None

    def __call__(self, _loop_epoch: int) -> Iterator:
        if self._it is None:  # at the first batch: after the loop has resumed the trainer's step
            self._it = self._sequence(self._position())
        given = 0
        while True:
            item, self._held = self._held, None
            if item is None:
                item = next(self._it, None)
                if item is None:
                    return
            if given and item[0] != self.epoch:
                self._held = item
                return
            self.epoch = item[0]
            given += 1
            yield self._convert(item[1])


def consumed(trainer, world: int) -> Callable[[], int]:
    """The resume position: micro-batches this worker drew before the trainer's current step."""
    return lambda: trainer.step * trainer.cfg.batch_plan(world).accumulation


def indexed(per_epoch: int, order: Callable[[int], Sequence]) -> RunSequence:
    """Epochs of `per_epoch` micro-batches each, `order(epoch)` listing them: skipping is arithmetic."""

    def sequence(skip: int) -> Iterator[tuple[int, Any]]:
        epoch, start = divmod(skip, per_epoch)
        while True:
            for item in order(epoch)[start:]:
                yield epoch, item
            epoch, start = epoch + 1, 0

    return sequence


def skipped(run: Callable[[], Iterator[tuple[int, Any]]]) -> RunSequence:
    """A sequence that cannot seek: the run's stream from its start, the first `skip` drawn and dropped."""
    return lambda skip: itertools.islice(run(), skip, None)


def passes(epoch_pass: Callable[[int], Iterable], first: int = 0) -> RunSequence:
    """One pass of `epoch_pass(epoch)` per epoch from `first`; it ends at an epoch that yields nothing
    (the step loop then says the dataset is too small)."""

    def run() -> Iterator[tuple[int, Any]]:
        for epoch in itertools.count(first):
            n = 0
            for batch in epoch_pass(epoch):
                n += 1
                yield epoch, batch
            if n == 0:
                return

    return skipped(run)


def tagged(stream: Callable[[], Iterable[dict]], first: int = 0, key: str = "epoch") -> RunSequence:
    """One continuous stream of micro-batches whose rows carry their epoch (`key`). Rows arrive roughly,
    not strictly, in epoch order (shuffled across the boundary), so a micro-batch belongs to the current
    epoch until one arrives whose rows are all of a later epoch: that one opens the next epoch."""

    def run() -> Iterator[tuple[int, Any]]:
        epoch, given = first, 0
        for b in stream():
            if int(b[key].min()) > epoch and given:
                epoch, given = epoch + 1, 0
            given += 1
            yield epoch, b

    return skipped(run)
