"""Training: exact resume from a checkpoint, and the OmniEditor job on Ray Train (DDP over two CPU
workers, pairs streamed through Ray Data), then the merge that the EditLoRA stage builds on."""

from __future__ import annotations

import os

import pytest
import torch

from tests.photodoodle.helpers import make_pair_dataset
from training.common.rundir import RunDir
from training.photodoodle.batches import cached_epochs, cached_pairs
from training.photodoodle.config import TrainConfig
from training.photodoodle.job import plan_job, publish_run_lora
from training.photodoodle.loop import WorkerContext, train
from training.photodoodle.lora import trainable_state_dict
from training.photodoodle.model import load_model
from training.photodoodle.trainer import PhotoDoodleTrainer


def _cfg(store: str, tiny_dir: str, **run) -> TrainConfig:
    cfg = TrainConfig.for_stage("editlora", "tiny", store=store, dataset="magic", artist="magic", **run)
    return cfg.replace(
        model={"source": cfg.model.source.__class__(preset="tiny", tiny_root=os.path.dirname(tiny_dir))}
    )


def _train_in_process(cfg: TrainConfig) -> tuple[dict, dict]:
    plan = plan_job(cfg, log=lambda m: None)
    info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "trigger": plan.trigger}
    model = load_model(plan.cfg.model.source)
    trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
    batches = cached_epochs(cached_pairs(plan.cfg, info, model, "cpu", 0), trainer, 0, 1)

    def publish(t, extra):
        return publish_run_lora(plan.cfg, plan.trigger, t.model.transformer, extra)

    result = train(trainer, plan.run, batches, WorkerContext(log=lambda m: None, publish=publish))
    return result, trainable_state_dict(model.transformer)


def test_resume_continues_exactly_where_the_checkpoint_left_off(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 5)
    straight, w_straight = _train_in_process(
        _cfg(store, tiny_dir, steps=6, checkpoint_every=3, run_name="straight")
    )
    first, _ = _train_in_process(_cfg(store, tiny_dir, steps=3, checkpoint_every=3, run_name="split"))
    assert first["steps"] == 3
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


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_omnieditor_on_ray_train_with_ddp_then_merge(tiny_dir, tmp_path):
    from diffusers import FluxTransformer2DModel

    from training.photodoodle.artifacts import find_merged_base
    from training.photodoodle.merge import base_identity, merge_omnieditor
    from training.photodoodle.ray_job import launch

    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "edits", 6)
    cfg = TrainConfig.for_stage(
        "omnieditor", "tiny", store=store, dataset="edits", steps=4, checkpoint_every=2, workers=2
    )
    cfg = cfg.replace(
        model={"source": cfg.model.source.__class__(preset="tiny", tiny_root=os.path.dirname(tiny_dir))},
        data={"cache": "off"},
    )  # the OmniEditor path: pairs streamed through Ray Data
    result = launch(cfg, cpus=0.5)
    assert result["steps"] == 4 and result["world_size"] == 2 and result["replicas_agree"]
    assert result["lora"].endswith(
        "runs/omnieditor/" + result["run_id"] + "/lora/pytorch_lora_weights.safetensors"
    )
    assert result["lora_card"]["rank"] == 128 and result["lora_card"]["stage"] == "omnieditor"
    merged = merge_omnieditor(store, result["run_id"], cfg.model.source, result["lora"])
    assert FluxTransformer2DModel.from_pretrained(merged["transformer"]).config.num_layers == 1
    assert find_merged_base(store, base_identity(cfg.model.source))["transformer"] == merged["transformer"]
