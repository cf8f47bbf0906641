"""The PbE training stream: no held-out image ever reaches a training batch (cached and uncached, 1 and
2 workers), and with sample-by-image each epoch has one stored (box, variant) per training image."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import replace

import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
from doodleflow.data.refresh import commit_version, diff_with_latest
from doodleflow.data.shard import build_unit
from doodleflow.data.split import split_of
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source
from doodleflow.data.units import make_units, new_plan_folder
from doodleflow.training.pbe.cache import build_latent_cache
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.stream import (
    StreamPlan,
    epoch_stream,
    stream_epochs,
    stream_parts,
    version_counts,
)

EPOCHS = 3


@pytest.fixture(scope="module")
def version(tmp_path_factory, tiny_dir, models_root):
    root = tmp_path_factory.mktemp("split")
    src, store = str(root / "src"), str(root / "store")
    make_source(src, 8, seed=0, size=(256, 192), boxes_per_image=(1, 2))
    cur = CurationConfig(seed=0, variants=2, samples_per_shard=8, row_group_size=4, heldout_fraction=0.3)
    ds = DatasetStore(store, "split")
    plan = plan_inputs(src, None, cur)
    diff = diff_with_latest(ds, plan)
    units = make_units(diff.new_jobs, cur, ds.fs, new_plan_folder(ds))
    stats = [build_unit(u, cur, store, "split") for u in units]
    v = commit_version(ds, cur, plan, diff, stats, "test-split", src)["version"]
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        data={"resolution": 64},
        run={"store": store, "dataset": "split", "version": v},
    )
    cache = build_latent_cache(load_pbe_dir(tiny_dir), cfg, batch_size=8, log=lambda m: None)
    table = ds.read_table(v, columns=["image_id", "sample_id"]).to_pydict()
    held = {
        i
        for i, h in zip(
            table["image_id"], split_of(ds.manifest(v)).heldout_mask(table["image_id"]), strict=True
        )
        if h
    }
    return ds, v, cache, table, held


def _plan(ds, v, cache, sample_by="image") -> StreamPlan:
    s = split_of(ds.manifest(v))
    parts, shas = stream_parts(ds, v, cache)
    return StreamPlan(ds.store_uri, parts, shas, cache, s.fraction, s.seed, 0, sample_by, 0, EPOCHS, 64, 32)


def test_the_version_has_held_out_images_and_counts_them(version):
    ds, v, _, table, held = version
    assert 0 < len(held) < len(set(table["image_id"]))
    counts = version_counts(ds, v, split_of(ds.manifest(v)))
    n_held = sum(i in held for i in table["image_id"])
    assert counts["heldout_samples"] == n_held == ds.manifest(v)["heldout"]["samples"]
    assert counts["train_samples"] == len(table["image_id"]) - n_held
    assert counts["train_images"] == len(set(table["image_id"]) - held)


def test_each_epoch_is_one_stored_draw_per_training_image(version, ray_cluster):
    ds, v, cache, table, held = version
    train_images = set(table["image_id"]) - held
    chosen = []
    for c in (None, cache):
        by_epoch = defaultdict(list)
        for r in epoch_stream(_plan(ds, v, c)).take_all():
            by_epoch[int(r["epoch"])].append((r["image_id"], r["sample_id"]))
        assert sorted(by_epoch) == list(range(EPOCHS))
        for rows in by_epoch.values():  # each training image once per epoch, no held-out image
            assert sorted(i for i, _ in rows) == sorted(train_images)
        chosen.append({e: sorted(rows) for e, rows in by_epoch.items()})
    assert chosen[0] == chosen[1]  # the cached stream trains on the same draws as the uncached one
    # An image with K stored draws shows K different ones before repeating (here K >= 2: variants=2).
    draws = defaultdict(list)
    for e in range(EPOCHS):
        for i, sid in chosen[0][e]:
            draws[i].append(sid)
    assert all(len(set(d[:2])) == 2 for d in draws.values())


@pytest.mark.parametrize(("workers", "cached"), [(1, False), (2, False), (2, True)])
def test_no_held_out_image_reaches_a_training_batch(version, ray_cluster, workers, cached):
    ds, v, cache, table, held = version
    shards = epoch_stream(_plan(ds, v, cache if cached else None, "box")).streaming_split(workers, equal=True)
    seen: list[Counter] = [Counter() for _ in range(workers)]

    def consume(rank: int) -> None:
        epochs = stream_epochs(shards[rank], 2, 4, 0, rank, lambda b: b)
        for e in range(EPOCHS):
            for b in epochs(e):
                assert b["target_moments" if cached else "target"].shape[0] == 2
                seen[rank].update(b["image_id"].tolist())

    threads = [threading.Thread(target=consume, args=(r,)) for r in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = sum(seen, Counter())
    assert ids and not set(ids) & held
    # box mode: every training sample of every epoch, minus at most a partial batch per worker
    assert (
        sum(ids.values())
        >= EPOCHS * (len(table["image_id"]) - sum(i in held for i in table["image_id"])) - 2 * workers
    )


def test_the_job_plan_counts_the_split_and_an_old_manifest_gets_the_default(version, models_root, tmp_path):
    import json
    import shutil

    from doodleflow.training.pbe.job import plan_job

    ds, v, _, table, held = version
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        data={"resolution": 64, "batch_size": 2, "latent_cache": "off"},
        run={"store": ds.store_uri, "dataset": "split", "version": v, "steps": 5, "run_name": "plan-1"},
    )
    logs: list[str] = []
    plan = plan_job(cfg, log=logs.append)
    train_images = len(set(table["image_id"]) - held)
    assert plan.counts["heldout_images"] == len(held) and plan.counts["train_images"] == train_images
    assert plan.counts["samples_per_epoch"] == train_images and plan.counts["split"]["defaulted"] is False
    assert plan.stream.epochs >= 5 * 2 / train_images  # enough epochs for 5 steps of the global batch 2
    assert not any("records no split" in m for m in logs)

    # A version committed before the split was recorded: same rows, manifest without "heldout".
    old = tmp_path / "old"
    shutil.copytree(ds.store_uri, old)
    mpath = old / "datasets" / "split" / "versions" / f"v{v:06d}" / "_manifest.json"
    m = json.loads(mpath.read_text())
    m.pop("heldout")
    mpath.write_text(json.dumps(m))
    logs.clear()
    plan = plan_job(cfg.replace(run={"store": str(old), "run_name": "plan-2"}), log=logs.append)
    assert plan.counts["split"] == {"fraction": 0.1, "seed": 0, "defaulted": True}
    assert any("records no split: default parameters" in m for m in logs), logs


def _draws(ds, v, cache, workers: int, position: int, epochs: int = 6) -> list[list[tuple]]:
    """Per rank, the (epoch, sample ids) of every micro-batch of 2 the worker's epoch source hands the
    step loop, resumed after `position` micro-batches."""
    plan = replace(_plan(ds, v, cache), epochs=epochs)
    shards = epoch_stream(plan).streaming_split(workers, equal=True)
    out: list[list[tuple]] = [[] for _ in range(workers)]

    def consume(rank: int) -> None:
        source = stream_epochs(shards[rank], 2, 4, 0, rank, lambda b: b, lambda: position)
        for e in range(100):
            for b in source(e):
                out[rank].append((source.epoch, tuple(b["sample_id"].tolist())))
            if source.epoch is None or source.epoch < e:
                return  # the stream ended

    threads = [threading.Thread(target=consume, args=(r,)) for r in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize(("workers", "cached"), [(1, False), (2, False), (1, True)])
def test_a_resumed_stream_draws_what_the_uninterrupted_one_would(version, ray_cluster, workers, cached):
    """training/core/epochs.py's rule on Ray Data shards: the stream is the same on every execution,
    and a worker resumed after k micro-batches draws exactly the rest of it, epochs included."""
    ds, v, cache, _, _ = version
    c = cache if cached else None
    straight = _draws(ds, v, c, workers, 0)
    assert straight == _draws(ds, v, c, workers, 0)  # reproducible (Ray Data's order kept)
    k = len(straight[0]) // 2 + 1  # past the first micro-batches, short of the last epoch
    assert 0 < straight[0][k - 1][0] < straight[0][-1][0]
    assert _draws(ds, v, c, workers, k) == [s[k:] for s in straight]


def _train_pbe(version, tiny_dir, models_root, cached: bool, name: str, steps: int) -> dict:
    """Train the tiny PbE in this process (no Ray Train) on one worker's shard of the real stream, as
    training/pbe/family.py:worker does; resumes when the run has a checkpoint."""
    from doodleflow.training.core.epochs import consumed
    from doodleflow.training.pbe.cache import encoded_batch
    from doodleflow.training.pbe.data import pixel_batch
    from doodleflow.training.pbe.trainer import PbETrainer
    from doodleflow.training.runs.rundir import RunDir, read_checkpoint_state
    from doodleflow.training.runtime.loop import WorkerContext, train

    ds, v, cache, _, _ = version
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        optim={"lr": 1e-3, "warmup_steps": 0},
        data={"resolution": 64, "batch_size": 2},
        run={"store": ds.store_uri, "dataset": "split", "version": v, "steps": steps, "checkpoint_every": 3},
    )
    trainer = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    plan = replace(_plan(ds, v, cache if cached else None), epochs=6, ref_size=trainer.model.clip_size)
    shard = epoch_stream(plan).streaming_split(1)[0]
    convert = encoded_batch if cached else pixel_batch
    source = stream_epochs(shard, 2, 4, 0, 0, convert, consumed(trainer, 1))
    run = RunDir(ds.store_uri, "pbe", name)
    result = train(trainer, run, source, WorkerContext(log=lambda m: None))
    state = read_checkpoint_state(run.uri(run.checkpoint_path(steps)))
    return {"result": result, "weights": trainer.model.trainable_state_dict(), "state": state}


@pytest.mark.parametrize("cached", [False, True])
def test_a_pbe_run_stopped_mid_epoch_resumes_to_the_same_weights(
    version, ray_cluster, tiny_dir, models_root, cached
):
    """Stop at step 3 (about 5 training images an epoch, 2 a step: mid-epoch) and resume to 5: the
    weights equal the uninterrupted run's bit for bit, and the checkpoint records the same epoch."""
    import torch

    tag = "cached" if cached else "raw"
    straight = _train_pbe(version, tiny_dir, models_root, cached, f"straight-{tag}", 5)
    _train_pbe(version, tiny_dir, models_root, cached, f"split-{tag}", 3)
    resumed = _train_pbe(version, tiny_dir, models_root, cached, f"split-{tag}", 5)
    assert resumed["result"]["resumed_from"] == 3 and resumed["result"]["steps"] == 5
    w, r = straight["weights"], resumed["weights"]
    assert all(torch.equal(w[k], r[k]) for k in w)
    assert resumed["result"]["final_loss"] == straight["result"]["final_loss"]
    assert resumed["state"]["epoch"] == straight["state"]["epoch"]  # the epoch recorded, as never stopped
