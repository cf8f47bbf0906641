"""PhotoDoodle never trains on a held-out pair: the streamed decode and the cached pairs both leave out
exactly the pairs the evaluator scores, and the plan counts them."""

from __future__ import annotations

import os

from doodleflow.data.split import split_of
from doodleflow.data.store import DatasetStore
from doodleflow.training.eval.photodoodle import heldout_pairs
from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
from doodleflow.training.photodoodle.data import PAIR_COLUMNS, decode_pairs
from doodleflow.training.photodoodle.job import plan_job
from doodleflow.training.photodoodle.model import load_model
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

from tests.photodoodle.helpers import make_pair_dataset

N = 24


def test_no_held_out_pair_reaches_a_training_batch(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", N)
    ds = DatasetStore(store, "magic")
    held_eval = {r["pair_id"] for r in heldout_pairs(store, "magic", None, limit=N)[0]}
    assert 0 < len(held_eval) < N

    cfg = TrainConfig.for_stage("editlora", "tiny", store=store, dataset="magic", artist="magic")
    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir), base_transformer=PLAIN_BASE)
    logs: list[str] = []
    plan = plan_job(cfg.replace(model={"source": source}), log=logs.append)
    assert plan.counts == {
        "train_samples": N - len(held_eval),
        "heldout_samples": len(held_eval),
        "buckets": {"96x64": N - len(held_eval)},  # every synthetic pair is 64 wide, 96 high
    }
    assert plan.pairs == N - len(held_eval)
    assert any(f"{len(held_eval)} held out for evaluation" in m for m in logs), logs
    assert plan.heldout == (split_of(ds.manifest(plan.cfg.run.version)).fraction, 0)

    # Streamed: the decode step drops them.
    rows = ds.read_table(plan.cfg.run.version, columns=PAIR_COLUMNS).to_pydict()
    decoded = decode_pairs(rows, plan.cfg.data.buckets(), None, plan.heldout)
    assert len(decoded["pair_id"]) == N - len(held_eval) and not set(decoded["pair_id"]) & held_eval

    # Cached: the cache holds every pair, training reads it without the held-out ones.
    info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "heldout": plan.heldout}
    assert plan.cache_dir
    model = load_model(plan.cfg.model.source)
    cache = cached_pairs(plan.cfg, info, model, "cpu", 0)
    assert len(cache) == N - len(held_eval) and not set(cache.pair_ids) & held_eval
    trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
    epochs = cached_epochs(cache, trainer, 0, 1)
    assert sum(1 for _ in epochs(0)) > 0
