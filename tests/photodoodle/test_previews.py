"""Samples while an EditLoRA trains (issue 22 item 1), in-process with the tiny FLUX: the grid's size is
rows x columns of tiles, the same seeds give the same tiles for the same weights, the MLflow run has
the grid at each sampling step, and the trained weights are bit-identical with sampling on or off."""

from __future__ import annotations

import io
import os

import torch
from doodleflow.training.eval.grid import image_tile
from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
from doodleflow.training.photodoodle.job import plan_job
from doodleflow.training.photodoodle.lora import trainable_state_dict
from doodleflow.training.photodoodle.model import load_model
from doodleflow.training.photodoodle.previews import doodle_previews
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer
from doodleflow.training.runtime.loop import WorkerContext, train
from doodleflow.training.runtime.previews import FILE, GRID, layout
from doodleflow.training.runtime.tracking import Tracker
from mlflow import MlflowClient
from PIL import Image

from tests.photodoodle.helpers import make_pair_dataset

TILE = 64


def _cfg(store: str, tiny_dir: str, every: int, name: str) -> TrainConfig:
    cfg = TrainConfig.for_stage(
        "editlora", "tiny", store=store, dataset="magic", artist="magic", steps=4, run_name=name
    )
    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir), base_transformer=PLAIN_BASE)
    sample = {
        "every": every,
        "first": True,
        "inputs": 1,
        "prompts": ("add a red hat",),
        "steps": 2,
        "tile": TILE,
    }
    return cfg.replace(model={"source": source}, sample=sample)


def _train(cfg: TrainConfig, tracker=None):
    plan = plan_job(cfg, log=lambda m: None)
    info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "trigger": plan.trigger}
    model = load_model(plan.cfg.model.source)
    trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
    samples = doodle_previews(trainer, plan.run, info, tracker)  # before the cache releases T5/CLIP
    batches = cached_epochs(cached_pairs(plan.cfg, info, model, "cpu", 0), trainer, 0, 1)
    ctx = WorkerContext(log=lambda m: None, tracker=tracker, previews=samples)
    result = train(trainer, plan.run, batches, ctx)
    return result, trainable_state_dict(model.transformer), samples, plan.run


def test_samples_while_training_leave_training_unchanged(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 12)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "editlora", "on", {}, artifact_root=str(tmp_path / "artifacts"))

    on, w_on, factory, run = _train(_cfg(store, tiny_dir, every=2, name="on"), tracker)
    off, w_off, none, _ = _train(_cfg(store, tiny_dir, every=0, name="off"))
    assert none is None  # --sample-every 0: no sampler at all
    assert all(torch.equal(w_on[k], w_off[k]) for k in w_off)  # bit-identical weights
    assert on["final_loss"] == off["final_loss"]

    record = run.read_json(FILE)
    assert [p["step"] for p in record["points"]] == [0, 2, 4]  # step 0, every 2, the last step
    assert record["rows"] == 2 and record["heldout"] is True  # one held-out pair + one --sample-prompt
    grid = Image.open(io.BytesIO(run.read_bytes(GRID)))
    # 2 rows x (source, prompt + 3 sampling points) tiles of TILE px
    assert grid.size == layout(TILE).size(2, 2 + 3)

    # Identical weights and seeds give identical tiles: the final weights, sampled again by a sampler
    # rebuilt from the run folder (as a resumed run does), give step 4's stored tiles exactly.
    again = factory(4)
    assert sorted(again.columns) == [0, 2, 4]
    fresh = [image_tile(img, TILE) for img in again.render()]
    assert [t.tobytes() for t in fresh] == [t.tobytes() for t in again.columns[4]]
    assert fresh[0].size == (TILE, TILE) and fresh[0].tobytes() != fresh[1].tobytes()

    # MLflow has the grid as an image at each sampling step.
    client = MlflowClient(tracking_uri=uri)
    names = [a.path for a in client.list_artifacts(tracker.mlflow_run, "images")]
    for step in (0, 2, 4):
        assert any(n.startswith(f"images/samples+step+{step}+") and n.endswith(".png") for n in names), names
