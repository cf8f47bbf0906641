"""Inference: same result as diffusers' PaintByExamplePipeline, the mask polarity, determinism, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from doodleflow.flows.cli import main
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.sample import default_scheduler, paint, prepare
from PIL import Image

from .conftest import FIXTURES, example_triple


def _inputs(k: int, size: int = 512):
    image, mask, ref = example_triple(k)
    return prepare(image, mask, ref, size=size, clip_size=224)


def test_paint_equals_the_diffusers_pipeline(tiny_dir):
    from diffusers import PaintByExamplePipeline

    model = load_pbe_dir(tiny_dir)
    x, m, ref = _inputs(1, size=256)  # any multiple of 8 works; 256 keeps the CPU test short
    ours = paint(model, x, m, ref, steps=2, guidance=5.0, seed=321)
    pipe = PaintByExamplePipeline(
        vae=model.vae,
        image_encoder=model.image_encoder,
        unet=model.unet,
        scheduler=default_scheduler(),
        safety_checker=None,
        feature_extractor=model.feature_extractor,
    )
    theirs = pipe(
        example_image=ref,
        image=x,
        mask_image=(m.float() / 255)[None],
        num_inference_steps=2,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(321),
        output_type="pt",
    ).images
    assert ours.shape == theirs.shape == (1, 3, 256, 256)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_the_source_enters_only_through_the_kept_region(tiny_dir):
    """White = repaint: pixels under the white region are never seen; pixels outside are."""
    model = load_pbe_dir(tiny_dir)
    x, m, ref = _inputs(2, size=256)
    base = paint(model, x, m, ref, steps=1, seed=5876)
    hole = m[0] == 255
    inside, outside = x.clone(), x.clone()
    inside[..., hole] = -inside[..., hole]
    outside[..., ~hole] = -outside[..., ~hole]
    assert torch.equal(paint(model, inside, m, ref, steps=1, seed=5876), base)
    assert not torch.equal(paint(model, outside, m, ref, steps=1, seed=5876), base)


@pytest.fixture(scope="module")
def trained_checkpoint(tiny_dir, models_root, tmp_path_factory):
    """A real run checkpoint: a few steps of the trainer written to a run directory."""
    from doodleflow.training.pbe.data import PixelBatch
    from doodleflow.training.pbe.trainer import PbETrainer

    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        optim={"lr": 1e-3, "warmup_steps": 0},
    )
    t = PbETrainer(load_pbe_dir(tiny_dir), cfg)
    x, m, ref = _inputs(3, size=128)
    from doodleflow.training.pbe.mask import repaint_to_keep

    t.train_step(PixelBatch(target=x, keep=repaint_to_keep(m), reference=ref))
    model, opt, state = t.state_tensors()
    run = RunDir(str(tmp_path_factory.mktemp("gen") / "store"), "pbe", "gen")
    return run.write_checkpoint(1, model, opt, {**state, "config": cfg.to_dict()})


def _generate(checkpoint: str, k: int, seed: int, out: str, capsys) -> np.ndarray:
    f = FIXTURES
    argv = [
        "generate",
        "pbe",
        "--checkpoint",
        checkpoint,
        "--steps",
        "1",
        "--seed",
        str(seed),
        "--out",
        out,
        "--image",
        f"{f}/image/example_{k}.png",
        "--mask",
        f"{f}/mask/example_{k}.png",
        "--reference",
        f"{f}/reference/example_{k}.jpg",
        "--json",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["out"] == out and result["seed"] == seed and result["steps"] == 1
    with Image.open(out) as im:
        assert im.size == (512, 512) and im.mode == "RGB"
        return np.asarray(im)


@pytest.mark.parametrize("k,seed", [(1, 321), (2, 5876), (3, 5065)])
def test_generate_cli_on_the_upstream_examples(trained_checkpoint, tmp_path, capsys, k, seed):
    """The upstream triples with their upstream seeds; the first also checks determinism."""
    first = _generate(trained_checkpoint, k, seed, str(tmp_path / "a.png"), capsys)
    if k == 1:
        assert np.array_equal(first, _generate(trained_checkpoint, k, seed, str(tmp_path / "b.png"), capsys))
        assert not np.array_equal(
            first, _generate(trained_checkpoint, k, seed + 1, str(tmp_path / "c.png"), capsys)
        )


def test_generate_loads_a_diffusers_pbe_directory(tiny_dir, tmp_path, capsys):
    out = str(tmp_path / "o.png")
    f = FIXTURES
    assert (
        main(
            [
                "generate",
                "pbe",
                "--checkpoint",
                tiny_dir,
                "--steps",
                "1",
                "--out",
                out,
                "--image",
                f"{f}/image/example_1.png",
                "--mask",
                f"{f}/mask/example_1.png",
                "--reference",
                f"{f}/reference/example_1.jpg",
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        assert im.size == (512, 512)
