"""Paint-by-Example samples while training (issue 22 item 1), in-process with the tiny model: held-out
image, mask and reference repainted every `every` steps and at the last; the grid's size is
rows x columns of tiles; the trained weights are bit-identical with sampling on or off."""

from __future__ import annotations

import io

import pytest
import torch
from doodleflow.data.split import split_of
from doodleflow.data.store import DatasetStore
from doodleflow.training.eval.grid import image_tile
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import decode_rows, pixel_batch
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.previews import pbe_previews
from doodleflow.training.pbe.trainer import PbETrainer
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.loop import WorkerContext, train
from doodleflow.training.runtime.previews import FILE, GRID, layout
from PIL import Image

from .datasets import make_version

TILE = 48


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    root = tmp_path_factory.mktemp("previews")
    store = str(root / "store")
    v = make_version(str(root), store, "prev", n_images=10)
    return store, v


def _run(tiny_dir, store: str, v: int, every: int, name: str):
    cfg = TrainConfig().replace(
        optim={"lr": 1e-3},
        data={"resolution": 64, "batch_size": 2},
        run={
            "store": store,
            "dataset": "prev",
            "version": v,
            "steps": 2,
            "checkpoint_every": 2,
            "run_name": name,
        },
        sample={"every": every, "inputs": 2, "steps": 2, "tile": TILE},
    )
    t = DatasetStore(store, "prev").read_table(v, columns=["target_jpeg", "mask_png", "reference_jpeg"])
    batch = pixel_batch(decode_rows(t.slice(0, 2).to_pydict(), resolution=64, ref_size=224))
    trainer = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    run = RunDir(store, "pbe", name)
    samples = pbe_previews(trainer, run)
    result = train(trainer, run, lambda epoch: [batch], WorkerContext(log=lambda m: None, previews=samples))
    return result, trainer.model.trainable_state_dict(), samples, run


def test_pbe_samples_while_training_leave_training_unchanged(tiny_dir, version):
    store, v = version
    on, w_on, factory, run = _run(tiny_dir, store, v, every=1, name="on")
    off, w_off, none, _ = _run(tiny_dir, store, v, every=0, name="off")
    assert none is None
    assert all(torch.equal(w_on[k], w_off[k]) for k in w_off) and on["final_loss"] == off["final_loss"]

    # the inputs are held-out images of the version (data/split.py): as many as it holds out, up to 2
    ds = DatasetStore(store, "prev")
    ids = ds.read_table(v, columns=["image_id"]).to_pydict()["image_id"]
    held = {i for i, h in zip(ids, split_of(ds.manifest(v)).heldout_mask(ids), strict=True) if h}
    rows = min(2, len(held)) or 2
    record = run.read_json(FILE)
    assert [p["step"] for p in record["points"]] == [1, 2]  # no step 0: the reference's log_first_step=False
    assert record["rows"] == rows and record["heldout"] == bool(held)
    grid = Image.open(io.BytesIO(run.read_bytes(GRID)))
    assert grid.size == layout(TILE).size(rows, 2 + 2)  # rows x (input, reference + 2 points)

    again = factory(2)  # rebuilt from the run folder; the model holds the final weights
    fresh = [image_tile(img, TILE) for img in again.render()]
    assert [f.tobytes() for f in fresh] == [c.tobytes() for c in again.columns[2]]


def test_pruning_keeps_the_weights_of_sampling_points(tmp_path):
    from doodleflow.training.runs.rundir import read_checkpoint_uri

    run = RunDir(str(tmp_path / "store"), "pbe", "prune")
    for step in (1, 2, 3, 4):
        run.write_checkpoint(step, {"w": torch.full((2,), float(step))}, {"m": torch.zeros(2)}, {})
    assert run.prune(keep=1, keep_weights=lambda s: s == 2) == [1, 3]
    assert run.steps() == [2, 4] and run.latest() == 4
    files = sorted(p.rsplit("/", 1)[-1] for p in run.fs.ls(run.checkpoint_path(2), detail=False))
    assert files == ["model.safetensors", "state.json"]  # the optimizer state went, the weights stay
    weights, _, state = read_checkpoint_uri(run.uri(run.checkpoint_path(2)))
    assert state["step"] == 2 and torch.equal(weights["w"], torch.full((2,), 2.0))
    assert run.prune(keep=1, keep_weights=lambda s: s == 2) == [] and run.steps() == [2, 4]
