"""Which stored samples each epoch trains on, and in what order (no Ray here; training/pbe/stream.py
runs it inside Ray Data).

Paint-by-Example's loader (Fantasy-Studio/Paint-by-Example
`ldm/data/open-images.py`, `OpenImageDataset.__getitem__`) has one item per image and draws one of
its boxes at random on every visit, with a fresh mask, crop and augmentation. Our samples are drawn
once, at curation, `variants` times per box. `sample_by="image"` reproduces the reference's epoch:

- every training image contributes exactly one stored sample, a (box, variant), per epoch;
- which one is a seeded draw: the image's K = boxes x variants samples are put in a random order,
  one per epoch, and a fresh order is drawn every K epochs. Each epoch's box is uniform over the
  image's boxes (as `random.choice`), and an image shows every stored draw once before any repeats;
- the draw is a pure function of (seed, epoch, the image's sample ids): the same for any number of
  workers, any Parquet part layout, and for the cached and uncached streams.

`sample_by="box"` trains on every stored sample every epoch (the previous behaviour: images with
many boxes weigh more). Held-out images (data/split.py) never enter either stream.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from doodleflow.data.split import Split
from doodleflow.infra.errors import ConfigError, InputError

SampleBy = Literal["image", "box"]
SAMPLE_BY = ("image", "box")
ID_COLUMNS = ["image_id", "sample_id"]
_M64 = (1 << 64) - 1


def _u64(strings) -> np.ndarray:
    """A 64-bit digest per string (stable across processes and Python versions, unlike hash())."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(str(s).encode(), digest_size=8).digest(), "little") for s in strings),
        dtype=np.uint64,
        count=len(strings),
    )


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: uint64 -> well-scrambled uint64 (wraps modulo 2**64 by design)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def select_rows(
    image_ids, sample_ids, epoch: int, seed: int, sample_by: SampleBy = "image", heldout=None
) -> np.ndarray:
    """Indices (ascending) of the rows epoch `epoch` trains on; `heldout` (bool per row) are never chosen."""
    if sample_by not in SAMPLE_BY:
        raise ConfigError(f"--sample-by must be one of {SAMPLE_BY}, got {sample_by!r}")
    n = len(sample_ids)
    keep = np.ones(n, dtype=bool) if heldout is None else ~np.asarray(heldout, dtype=bool)
    rows = np.flatnonzero(keep)
    if sample_by == "box" or rows.size == 0:
        return rows
    images = np.asarray(image_ids, dtype=object)[rows].astype(str)
    _, group, counts = np.unique(images, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    k = counts[group].astype(np.uint64)  # K of each row's image
    cycle = np.uint64(epoch) // k  # a fresh order of the image's K samples every K epochs
    salt = _mix(np.uint64(seed & _M64) * np.uint64(0x9E3779B97F4A7C15) + cycle)
    keys = _mix(_u64(np.asarray(sample_ids, dtype=object)[rows]) ^ salt)
    order = np.lexsort((keys, group))  # by image, then by this cycle's random key
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = order[starts + (epoch % counts)]
    return np.sort(rows[pick])


def keyed_order(keys, seed: int, epoch: int, what: str) -> np.ndarray:
    """A seeded order of `keys` (strings naming content) for (seed, epoch, what): positions sorted by a
    digest of each key salted with the triple. It follows the keys, never their positions or any file
    name: a part's name follows its inputs' fingerprints (size and mtime, data/units.py), so two
    curations of the same photos name their parts differently, and an order salted by the name
    trained a fresh process on other batches than the last one."""
    salt = int.from_bytes(
        hashlib.blake2b(f"{seed}:{epoch}:{what}".encode(), digest_size=8).digest(), "little"
    )
    return np.argsort(_mix(_u64(keys) ^ np.uint64(salt)), kind="stable")


@functools.lru_cache(maxsize=4)
def part_order(part_sha256: tuple[str, ...], seed: int, epoch: int) -> np.ndarray:
    """Each epoch visits the parts in its own seeded order, keyed by their content addresses (the
    manifest's sha256, which a part carried into a later version keeps; cached: every item asks)."""
    return keyed_order(part_sha256, seed, epoch, "parts")


def read_epoch_part(
    fs, path: str, columns: list[str], split: Split, epoch: int, seed: int, sample_by: SampleBy
) -> pa.Table:
    """The rows of one Parquet part that `epoch` trains on, in the epoch's shuffled order. Only the
    row groups holding a chosen row are read past the id columns."""
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        ids = pf.read(columns=ID_COLUMNS)
        image_ids = ids.column("image_id").to_pylist()
        sample_ids = ids.column("sample_id").to_pylist()
        chosen = select_rows(image_ids, sample_ids, epoch, seed, sample_by, split.heldout_mask(image_ids))
        if chosen.size == 0:
            return pa.table({c: pa.array([], pf.schema_arrow.field(c).type) for c in columns})
        bounds = np.cumsum([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
        groups = np.unique(np.searchsorted(bounds, chosen, side="right"))
        table = pf.read_row_groups(groups.tolist(), columns=columns)
    first = np.concatenate([[0], bounds[:-1]])  # first row of each group
    local = np.concatenate([[0], np.cumsum(bounds[groups] - first[groups])[:-1]])  # where each group landed
    g_of = np.searchsorted(bounds, chosen, side="right")
    idx = local[np.searchsorted(groups, g_of)] + (chosen - first[g_of])
    idx = idx[keyed_order([sample_ids[i] for i in chosen], seed, epoch, "rows")]  # by content, not by name
    return table.take(pa.array(idx))


def epoch_sizes(image_ids, split: Split) -> dict:
    """Counts of a version's rows by split: what `train --json` reports."""
    held = split.heldout_mask(image_ids)
    ids = np.asarray(image_ids, dtype=object)
    return {
        "train_samples": int((~held).sum()),
        "heldout_samples": int(held.sum()),
        "train_images": len(set(ids[~held].tolist())),
        "heldout_images": len(set(ids[held].tolist())),
    }


def epochs_to_cover(steps_left: int, rows_per_step: int, rows_per_epoch: int) -> int:
    """Epochs a stream must hold so `steps_left` steps of `rows_per_step` rows never run dry (one spare:
    workers get whole batches only)."""
    if rows_per_epoch <= 0:
        raise InputError("no training rows: every image of this version is held out or the version is empty")
    return math.ceil(max(steps_left, 0) * rows_per_step / rows_per_epoch) + 1
