"""Paint-by-Example's training stream: every epoch of a run as one continuous Ray Data stream.

The driver plans it (`plan_stream`: the held-out split, the epochs the run needs, the counts that
`train --json` reports); Ray Data runs it (`epoch_stream`): one task per (epoch, part) reads the
part, keeps the rows that epoch trains on (training/pbe/epochs.py: never a held-out image; one
stored (box, variant) per image with `sample_by="image"`), and decodes only those. Each row carries
its epoch; a worker's iterator (`stream_epochs`, the shared epoch source of training/core/epochs.py)
hands the step loop one epoch at a time, and a resumed run continues mid-epoch exactly.

Why one stream instead of one `iter_batches` per epoch: every new `iter_batches` starts a fresh
Ray Data execution whose first batch waits for reads and decodes, a 7-12 s stall at each epoch
boundary (docs/benchmarks.md); a continuous stream keeps prefetching across the boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow.parquet as pq
from doodleflow.data.fsutil import filesystem
from doodleflow.data.split import Split, split_of
from doodleflow.training.pbe.epochs import SampleBy, epoch_sizes, epochs_to_cover, part_order, read_epoch_part

CHUNK = 16  # rows per emitted block: a 512px decoded sample is ~1.2 MB, keep blocks small
MAX_BLOCKS = 10_000  # read tasks of the stream (a full OpenImages run has ~1M (epoch, part) items)


@dataclass(frozen=True)
class StreamPlan:
    store: str
    parts: list[str]  # what each epoch reads: the version's parts, or their latent-cache entries
    part_sha256: list[str]  # each part's content address: what the epochs' part order is keyed by
    cache: dict | None  # the latent cache manifest (dtypes, shapes) when reading entries
    fraction: float
    split_seed: int
    seed: int
    sample_by: SampleBy
    start_epoch: int  # the stream's first epoch: 0, the run's start (a resume replays from there)
    epochs: int
    resolution: int
    ref_size: int

    def to_dict(self) -> dict:
        return asdict(self)


def version_counts(ds, version: int, split: Split) -> dict:
    """Train/held-out samples and images of a version (reads only the image_id column)."""
    ids: list[str] = []
    for p in ds.part_paths(version):
        with ds.fs.open(p, "rb") as f:
            ids += pq.read_table(f, columns=["image_id"]).column("image_id").to_pylist()
    return epoch_sizes(ids, split)


def stream_parts(ds, version: int, cache: dict | None) -> tuple[list[str], list[str]]:
    """(what the stream reads: the version's parts or their latent-cache entries, each one's sha256).
    The stream orders them by sha256, never by name or listing (training/pbe/epochs.py `keyed_order`)."""
    if cache:
        return list(cache["parts"]), list(cache["part_sha256"])
    files = ds.manifest(version)["files"]
    return [ds.uri(p) for p in ds.part_paths(version)], [f["sha256"] for f in files]


def plan_stream(cfg, ds, manifest: dict, cache: dict | None, ref_size: int, log) -> tuple[StreamPlan, dict]:
    """(the stream of the epochs the run's steps need, from its first: a resumed run replays it and skips
    what it drew, training/core/epochs.py; the counts)."""
    start_epoch, steps = 0, cfg.run.steps
    split = split_of(manifest)
    if split.defaulted:
        log(f"dataset {ds.name} v{cfg.run.version}: {split.describe()}")
    counts = version_counts(ds, cfg.run.version, split)
    per_epoch = counts["train_images"] if cfg.data.sample_by == "image" else counts["train_samples"]
    # One spare epoch per allowed restart: margin only now (a restarted group replays the stream and skips
    # what it drew), kept so the planned stream is the one it was. Unread epochs cost nothing (lazy).
    spare = int(getattr(getattr(cfg, "launch", None), "max_failures", 0) or 0)
    epochs = epochs_to_cover(steps, cfg.batch_plan().global_batch, per_epoch) + spare
    log(
        f"training data: {counts['train_samples']} samples of {counts['train_images']} images "
        f"({counts['heldout_samples']} samples of {counts['heldout_images']} held-out images left out); "
        f"sample by {cfg.data.sample_by}: {per_epoch} samples per epoch, epochs {start_epoch}.."
        f"{start_epoch + epochs - 1} in one stream"
    )
    parts, shas = stream_parts(ds, cfg.run.version, cache)
    plan = StreamPlan(cfg.run.store, parts, shas, cache, split.fraction, split.seed, cfg.run.seed, cfg.data.sample_by,
                      start_epoch, epochs, cfg.data.resolution, ref_size)  # fmt: skip
    return plan, {**counts, "samples_per_epoch": per_epoch, "sample_by": cfg.data.sample_by,
                  "split": {"fraction": split.fraction, "seed": split.seed, "defaulted": split.defaulted}}  # fmt: skip


def emit(batch: dict, plan: dict) -> Iterator[dict]:
    """Ray Data fn over item numbers: item i = (epoch, part) in the run's order; yields decoded rows
    of that epoch's choice from that part, CHUNK at a time, each row tagged with its epoch."""
    from doodleflow.training.pbe.cache import FIELDS, decode_cached
    from doodleflow.training.pbe.data import SAMPLE_COLUMNS, decode_rows

    p = StreamPlan(**plan)
    n = len(p.parts)
    columns = ["sample_id", "image_id", *(FIELDS if p.cache else SAMPLE_COLUMNS)]
    split = Split(p.fraction, p.split_seed)
    for item in np.asarray(batch["id"]).tolist():
        epoch = p.start_epoch + item // n
        uri = p.parts[int(part_order(tuple(p.part_sha256), p.seed, epoch)[item % n])]
        fs, path = filesystem(uri)
        table = read_epoch_part(fs, path, columns, split, epoch, p.seed, p.sample_by)
        for start in range(0, table.num_rows, CHUNK):
            rows = table.slice(start, CHUNK).to_pydict()
            out = decode_cached(rows, p.cache) if p.cache else decode_rows(rows, p.resolution, p.ref_size)
            out["epoch"] = np.full(len(rows["sample_id"]), epoch, dtype=np.int64)
            out["image_id"] = np.asarray(rows["image_id"], dtype=object)
            out["sample_id"] = np.asarray(rows["sample_id"], dtype=object)
            yield out


def epoch_stream(plan: StreamPlan):
    """The Ray Data dataset of the whole stream, items in (epoch, part) order."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    items = plan.epochs * len(plan.parts)
    # One item per block up to MAX_BLOCKS; beyond, consecutive items (the same epoch) share a block.
    ds = ray.data.range(items, override_num_blocks=min(items, MAX_BLOCKS)).map_batches(
        emit, batch_size=1, batch_format="numpy", fn_kwargs={"plan": plan.to_dict()}
    )
    # Blocks in item order, not as their tasks finish: the same stream on every execution, which a
    # resume replays (Ray Train sets its own options: training/runtime/ray_utils.py `ordered_ingest`).
    ds.context.execution_options.preserve_order = True
    return ds


def stream_epochs(
    shard, micro_batch: int, shuffle_buffer: int, seed: int, rank: int, convert: Callable, position=lambda: 0
):
    """The epoch source (training/core/epochs.py) of a worker's shard: one continuous iterator, a
    micro-batch belonging to the epoch its rows carry (blocks arrive roughly, not strictly, in epoch
    order, so a late batch of an earlier epoch is simply trained on). The stream always starts at the
    run's first epoch; a resumed run, or a worker group restarted after a failure, replays it and skips
    the `position()` micro-batches it had drawn."""
    from doodleflow.training.core.epochs import Epochs, tagged
    from doodleflow.training.runtime.ray_utils import shard_batches

    stream = tagged(lambda: shard_batches(shard, micro_batch, shuffle_buffer, seed * 100_003 + rank))
    return Epochs(stream, position, convert)
