"""Training without Ray: exact resume from a checkpoint, fail-fast on a damaged dataset. (The Ray Train
jobs run in tests/photodoodle/test_flows.py.)"""

from __future__ import annotations

import os

import pytest
import torch
from doodleflow.data.store import DatasetStore
from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
from doodleflow.training.photodoodle.job import plan_job, save_run_lora
from doodleflow.training.photodoodle.lora import trainable_state_dict
from doodleflow.training.photodoodle.model import load_model
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.loop import WorkerContext, train

from tests.photodoodle.helpers import make_pair_dataset


def _cfg(store: str, tiny_dir: str, **run) -> TrainConfig:
    """An EditLoRA on the plain tiny base, asked for explicitly (no OmniEditor has been merged here)."""
    cfg = TrainConfig.for_stage("editlora", "tiny", store=store, dataset="magic", artist="magic", **run)
    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir), base_transformer=PLAIN_BASE)
    return cfg.replace(model={"source": source})


def _train_in_process(cfg: TrainConfig, on_model=None) -> tuple[dict, dict]:
    """Train in this process (no Ray); `on_model(model)` sees the loaded model first (hooks)."""
    plan = plan_job(cfg, log=lambda m: None)
    info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "trigger": plan.trigger}
    assert plan.base == "flux"
    model = load_model(plan.cfg.model.source)
    if on_model is not None:
        on_model(model)
    trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
    batches = cached_epochs(cached_pairs(plan.cfg, info, model, "cpu", 0), trainer, 0, 1)

    def save_final(t, extra):
        return save_run_lora(plan.cfg, plan.trigger, t.model.transformer, extra, plan.base)

    result = train(trainer, plan.run, batches, WorkerContext(log=lambda m: None, save_final=save_final))
    return result, trainable_state_dict(model.transformer)


def _unfinish(store: str, run_id: str) -> None:
    """The run as a driver killed after its last checkpoint leaves it (no result.json): a finished run
    is never trained again in place (training/runs/plan.py), a checkpointed one continues."""
    run = RunDir(store, "editlora", run_id)
    run.fs.rm(run.path("result.json"))


def test_resume_continues_exactly_where_the_checkpoint_left_off(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 5)
    straight, w_straight = _train_in_process(
        _cfg(store, tiny_dir, steps=6, checkpoint_every=3, run_name="straight")
    )
    first, _ = _train_in_process(_cfg(store, tiny_dir, steps=3, checkpoint_every=3, run_name="split"))
    assert first["steps"] == 3
    _unfinish(store, "split")
    with pytest.raises(ValueError, match="already has checkpoints"):
        _train_in_process(_cfg(store, tiny_dir, steps=6, checkpoint_every=3, run_name="split"))
    resumed, w_resumed = _train_in_process(
        _cfg(store, tiny_dir, steps=6, checkpoint_every=3, run_name="split", resume=True)
    )
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 6
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)  # bit-identical continuation
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=0)
    recs = [
        r for r in RunDir(store, "editlora", "split").read_bytes("metrics.jsonl").decode().splitlines() if r
    ]
    assert len(recs) == 6  # the stored curve continues without duplicates
    # the trigger word and the cache travel with the run
    assert straight["lora_card"]["trigger"] == "sksmagiceffects"
    assert os.path.exists(os.path.join(store, "cache", "photodoodle", "magic"))


def test_accumulated_steps_resume_exactly_mid_epoch(tiny_dir, tmp_path):
    """A global batch of 2 on one worker: two micro-batches per step (a step spans the epoch boundary of
    5 pairs); a run split at step 2 continues bit-identically, its data position included."""
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 5)

    def cfg(**run):
        c = _cfg(store, tiny_dir, **{"steps": 4, "checkpoint_every": 2, **run})
        return c.replace(data={"batch_size": 2})

    assert cfg().batch_plan(1).accumulation == 2
    straight, w_straight = _train_in_process(cfg(run_name="straight"))
    _train_in_process(cfg(run_name="split", steps=2))
    _unfinish(store, "split")
    resumed, w_resumed = _train_in_process(cfg(run_name="split", resume=True))
    assert resumed["resumed_from"] == 2 and resumed["batch"] == {
        "global": 2,
        "micro": 1,
        "accumulation": 2,
        "workers": 1,
    }
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=0)


def test_a_damaged_part_fails_before_any_worker_starts(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 2)
    ds = DatasetStore(store, "magic")
    part = ds.part_paths(1)[0]
    os.unlink(part)  # a hard link to the shard: replace it, do not write through
    with open(part, "wb") as f:
        f.write(b"PAR1 garbage")
    with pytest.raises(ValueError, match="not readable Parquet"):
        plan_job(_cfg(store, tiny_dir, steps=2), log=lambda m: None)


def _train_streamed(cfg: TrainConfig) -> tuple[dict, dict]:
    """Train in this process on one worker's shard of the real Ray Data pair stream (no Ray Train), as
    training/photodoodle/family.py:worker does; resumes when the run has a checkpoint."""
    from doodleflow.training.core.epochs import consumed
    from doodleflow.training.photodoodle.data import pixel_pairs
    from doodleflow.training.photodoodle.stream import pair_stream
    from doodleflow.training.runtime.ray_utils import shard_epochs

    plan = plan_job(cfg, log=lambda m: None)
    assert plan.cache_dir is None
    model = load_model(plan.cfg.model.source)
    trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
    shard = pair_stream(plan).streaming_split(1, equal=True)[0]
    micro = plan.cfg.batch_plan(1).micro_batch
    source = shard_epochs(shard, plan.cfg, 0, lambda b: pixel_pairs(b, "cpu"), micro, consumed(trainer, 1))
    result = train(trainer, plan.run, source, WorkerContext(log=lambda m: None))
    return result, trainable_state_dict(model.transformer)


def test_streamed_pairs_resume_exactly_mid_epoch(ray_local, tiny_dir, tmp_path):
    """The shared epoch source on the streamed path (training/core/epochs.py): 5 pairs, 2 per step, a
    run stopped at step 3 (mid-epoch) resumes to the uninterrupted run's weights bit for bit."""
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 5)

    def cfg(**run):
        c = _cfg(store, tiny_dir, **{"steps": 5, "checkpoint_every": 3, **run})
        return c.replace(data={"cache": "off", "batch_size": 2, "micro_batch": 2, "aspect": "stretch"})

    straight, w_straight = _train_streamed(cfg(run_name="straight"))
    _train_streamed(cfg(run_name="split", steps=3))
    _unfinish(store, "split")
    resumed, w_resumed = _train_streamed(cfg(run_name="split", resume=True))
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 5
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=0)
