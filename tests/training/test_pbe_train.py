"""Training step, loss and checkpoints in pure torch (no Ray): overfitting, exact resume, store layout."""

from __future__ import annotations

import json

import pytest
import torch
from doodleflow.infra.errors import TamperedArtifact
from doodleflow.training.core.schedule import linear_warmup
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import pixel_batch
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.trainer import PbETrainer
from doodleflow.training.runs.rundir import RunDir

from .datasets import four_rows

FAST = {"optim": {"lr": 1e-3, "warmup_steps": 0}, "data": {"resolution": 128}}


@pytest.fixture(scope="module")
def four_samples(tmp_path_factory):
    return four_rows(str(tmp_path_factory.mktemp("four")))


def test_decoded_rows_have_model_shapes_and_the_hole_is_mid_grey(four_samples):
    px = pixel_batch(four_samples)
    assert px.target.shape == (4, 3, 128, 128) and px.reference.shape == (4, 3, 224, 224)
    assert px.keep.shape == (4, 1, 128, 128)
    assert px.target.min() >= -1 and px.target.max() <= 1
    hole = px.keep[:, 0] == 0
    assert 0 < hole.float().mean() < 0.9  # every sample has a region to repaint, and context to keep
    assert bool((px.masked.permute(0, 2, 3, 1)[hole] == 0).all())


def test_loss_falls_when_overfitting_four_samples(tiny_dir, four_samples):
    trainer = PbETrainer(load_pbe_dir(tiny_dir), TrainConfig().replace(**FAST))
    enc = trainer.encode(pixel_batch(four_samples))

    def held_loss() -> float:  # fixed noise, timesteps and drops: steps 10000.. are never trained on
        with torch.no_grad():
            return sum(float(trainer.loss(enc, 10_000 + i)) for i in range(8)) / 8

    before = held_loss()
    losses = [trainer.train_step(enc)["loss"] for _ in range(40)]
    after = held_loss()
    assert before > 0.8  # eps-prediction from a random UNet: MSE around 1
    assert after < 0.5 * before, (before, after)
    assert sum(losses[-10:]) < sum(losses[:10])


def test_warmup_schedule_is_linear_from_start_factor_then_constant():
    f = linear_warmup(100, 1e-6)
    assert f(0) == pytest.approx(1e-6) and f(50) == pytest.approx(0.5 + 0.5e-6) and f(100) == 1.0 == f(10**6)


def test_trainer_lr_follows_the_warmup(tiny_dir, four_samples):
    cfg = TrainConfig().replace(
        optim={"lr": 2e-5, "warmup_steps": 4, "warmup_start_factor": 0.0}, data={"resolution": 128}
    )
    t = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    enc = t.encode(pixel_batch(four_samples))
    assert [t.train_step(enc)["lr"] for _ in range(6)] == pytest.approx([0, 5e-6, 1e-5, 1.5e-5, 2e-5, 2e-5])


def _weights(trainer) -> dict:
    return {k: v.clone() for k, v in trainer.model.trainable_state_dict().items()}


def test_checkpoint_round_trip_resumes_exactly(tiny_dir, four_samples, tmp_path):
    cfg = TrainConfig().replace(optim={"lr": 1e-3, "warmup_steps": 10}, data={"resolution": 128})
    px = pixel_batch(four_samples)
    a = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    for _ in range(3):
        a.train_step(px)
    run = RunDir(str(tmp_path / "store"), "pbe", "rt")
    model_t, opt_t, state = a.state_tensors()
    uri = run.write_checkpoint(a.step, model_t, opt_t, state)
    assert uri.endswith("runs/pbe/rt/checkpoints/step-000003") and run.latest() == 3

    b = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    b.load_state(*run.read_checkpoint(3))
    assert b.step == 3 and b.optimizer.param_groups[0]["lr"] == a.optimizer.param_groups[0]["lr"]
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    # The continuation is the same computation: same loss and same weights after two more steps.
    la = [a.train_step(px)["loss"] for _ in range(2)]
    lb = [b.train_step(px)["loss"] for _ in range(2)]
    assert la == lb
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_checkpoint_files_layout_and_integrity(tiny_dir, tmp_path):
    from safetensors import safe_open

    t = PbETrainer(load_pbe_dir(tiny_dir), TrainConfig().replace(**FAST))
    run = RunDir(str(tmp_path / "store"), "pbe", "layout")
    for step in (1, 2, 3):
        run.write_checkpoint(step, *t.state_tensors())
    d = run.checkpoint_path(3)
    with safe_open(f"{d}/model.safetensors", "pt") as f:
        assert set(f.keys()) == set(t.model.trainable_state_dict())
    state = json.loads(run.fs.cat_file(f"{d}/state.json"))
    assert state["step"] == 3 and set(state["files"]) == {"model.safetensors", "optimizer.safetensors"}
    assert state["optimizer"]["param_groups"][0]["lr"] == 1e-3

    # A checkpoint without state.json (killed mid-write) does not exist; the previous one stays latest.
    run.fs.rm(f"{run.checkpoint_path(3)}/state.json")
    assert run.latest() == 2
    assert run.prune(keep=1) == [1] and run.steps() == [2]
    # A replaced tensor file is refused, not silently loaded.
    run.fs.pipe_file(f"{run.checkpoint_path(2)}/model.safetensors", b"garbage")
    with pytest.raises(TamperedArtifact, match="sha256"):
        run.read_checkpoint(2)


def test_model_flops_count_three_times_the_denoiser_plus_the_encoders(tiny_dir, four_samples):
    from doodleflow.training.core.mfu import count_flops
    from doodleflow.training.pbe.trainer import first

    t = PbETrainer(load_pbe_dir(tiny_dir), TrainConfig().replace(**FAST))
    px = pixel_batch(four_samples)
    enc = t.encode(px)
    cached, uncached = t.flops_per_sample(enc), t.flops_per_sample(px)
    one = first(enc, 1)
    with torch.no_grad():
        fwd = count_flops(
            lambda: t.model.denoiser(torch.zeros(1, 9, 16, 16), torch.tensor([1]), one.clip_pooled)
        )
    assert cached == 3 * fwd > 0
    encoders = count_flops(lambda: t.encode(first(px, 1)))
    assert uncached == cached + encoders and encoders > 0
