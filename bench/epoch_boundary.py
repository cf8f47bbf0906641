"""Data time per step across PbE epoch boundaries (issue 14 item 9): the per-epoch `iter_batches`
restart the trainer used before vs the continuous multi-epoch stream (training/pbe/stream.py), with
Ray Data's task order and with its order kept (what the exact resume needs, issue 20); and what a
resumed worker waits for its first batch while it replays and skips what it had drawn.

Both read the same real dataset version (synthetic OpenImages-layout source, the real curation code)
through a Ray Data `streaming_split` shard, as a Ray Train worker does, and consume micro-batches with
a fixed simulated step (sleep) standing in for the GPU. Reported: the data wait of the first step of
each epoch after the first (the boundary) against the median wait inside epochs, for both streams,
measured in the same run.

    .venv/bin/python -m bench.epoch_boundary [--images 48] [--epochs 4] [--step 0.25]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
from doodleflow.data.refresh import commit_version, diff_with_latest
from doodleflow.data.shard import build_unit
from doodleflow.data.split import split_of
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source
from doodleflow.data.units import make_units, new_plan_folder
from doodleflow.training.pbe.data import SAMPLE_COLUMNS, decode_rows
from doodleflow.training.pbe.stream import StreamPlan, epoch_stream, stream_epochs, stream_parts

BATCH, RES = 4, 512


def make_version(root: str, images: int) -> tuple[DatasetStore, int]:
    src, store = os.path.join(root, "src"), os.path.join(root, "store")
    make_source(src, images, seed=0, size=(640, 480), boxes_per_image=(1, 2))
    cfg = CurationConfig(seed=0, samples_per_shard=16)
    ds = DatasetStore(store, "b")
    plan = plan_inputs(src, None, cfg)
    diff = diff_with_latest(ds, plan)
    stats = [
        build_unit(u, cfg, store, "b") for u in make_units(diff.new_jobs, cfg, ds.fs, new_plan_folder(ds))
    ]
    return ds, commit_version(ds, cfg, plan, diff, stats, "bench", src)["version"]


def per_epoch_restart(ds: DatasetStore, v: int):
    """The previous reader: one Ray Data execution per epoch (`shard.iter_batches` called each epoch)."""
    import ray.data

    rd = ray.data.read_parquet([ds.uri(p) for p in ds.part_paths(v)], columns=SAMPLE_COLUMNS)
    shard = rd.map_batches(
        decode_rows, batch_format="numpy", batch_size=8, fn_kwargs={"resolution": RES}
    ).streaming_split(1)[0]

    def epoch_batches(e: int):
        yield from shard.iter_batches(batch_size=BATCH, batch_format="numpy", drop_last=True,
                                      local_shuffle_buffer_size=64, local_shuffle_seed=e)  # fmt: skip

    return epoch_batches


def continuous(ds: DatasetStore, v: int, epochs: int, ordered: bool = True, position: int = 0):
    """The stream as a worker reads it; `ordered=False`: blocks as their tasks finish (before the exact
    resume), `position`: a resumed worker's micro-batches to skip (training/core/epochs.py)."""
    s = split_of(ds.manifest(v))
    parts, shas = stream_parts(ds, v, None)
    plan = StreamPlan(ds.store_uri, parts, shas, None, s.fraction, s.seed, 0, "box", 0, epochs, RES, 224)
    stream = epoch_stream(plan)
    stream.context.execution_options.preserve_order = ordered
    shard = stream.streaming_split(1)[0]
    return stream_epochs(shard, BATCH, 64, 0, 0, lambda b: b, lambda: position)


def resume_wait(ds: DatasetStore, v: int, epochs: int, position: int) -> float:
    """Seconds to a resumed worker's first micro-batch: the replay of the `position` it skips."""
    source = continuous(ds, v, epochs, position=position)
    t0 = time.perf_counter()
    next(iter(source(0)))
    return time.perf_counter() - t0


def waits(epoch_batches, epochs: int, step: float) -> list[tuple[int, float]]:
    """(epoch, data wait) per step; `step` seconds of simulated compute after each batch."""
    out = []
    for e in range(epochs):
        it = iter(epoch_batches(e))
        while True:
            t0 = time.perf_counter()
            b = next(it, None)
            if b is None:
                break
            out.append((e, time.perf_counter() - t0))
            time.sleep(step)
    return out


def summary(rec: list[tuple[int, float]]) -> tuple[float, float]:
    first = {}
    for i, (e, _) in enumerate(rec):
        first.setdefault(e, i)
    boundary = [rec[i][1] for e, i in first.items() if e > 0]
    inside = [w for i, (_, w) in enumerate(rec) if i not in first.values()]
    return statistics.median(boundary), statistics.median(inside)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--step", type=float, default=0.25)
    a = ap.parse_args()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=400 * 2**20)
    ray.data.DataContext.get_current().enable_progress_bars = False
    with tempfile.TemporaryDirectory() as tmp:
        ds, v = make_version(tmp, a.images)
        rows = ds.manifest(v)["rows_total"]
        print(
            f"{rows} samples at {RES} px, micro-batch {BATCH}, simulated step {a.step}s, {a.epochs} epochs, {os.cpu_count()} CPUs"
        )
        print("| reader | data wait, first step of an epoch (median) | data wait inside epochs (median) |")
        print("| --- | --- | --- |")
        for name, make in (("per-epoch iter_batches (before)", lambda: per_epoch_restart(ds, v)),
                           ("one continuous stream, task order", lambda: continuous(ds, v, a.epochs, False)),
                           ("one continuous stream, order kept (now)", lambda: continuous(ds, v, a.epochs))):  # fmt: skip
            rec = waits(make(), a.epochs, a.step)
            b, i = summary(rec)
            print(f"| {name} | {b:.2f} s | {i:.3f} s |")
        start = resume_wait(ds, v, a.epochs, 0)
        for k in (len(rec) // 4, 3 * len(rec) // 4):  # of the micro-batches the run draws
            w = resume_wait(ds, v, a.epochs, k)
            print(
                f"resumed after {k} micro-batches: first batch in {w:.2f} s (from the start: {start:.2f} s, {w / start:.1f}x)"
            )


if __name__ == "__main__":
    main()
