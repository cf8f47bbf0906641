"""Inference: same result as diffusers' PaintByExamplePipeline, the mask polarity, determinism, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from doodleflow.flows.cli import main
from doodleflow.training.inference.pbe import default_scheduler, paint, prepare
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.runs.rundir import RunDir
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


def _cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(["generate", "pbe", *args])
    return rc, capsys.readouterr().err


def _files(tmp_path, mask: Image.Image | None = None, name: str = "m.png") -> list[str]:
    f = FIXTURES
    args = ["--image", f"{f}/image/example_1.png", "--reference", f"{f}/reference/example_1.jpg"]
    if mask is not None:
        mask.save(tmp_path / name)
    return [*args, "--mask", str(tmp_path / name) if mask is not None else f"{f}/mask/example_1.png"]


def test_mask_semantics_any_bright_channel_repaints():
    """A red mask repaints (it read as 'keep' through a grey conversion); dark and transparent keep."""
    from doodleflow.training.inference.pbe_inputs import repaint_mask

    m = np.zeros((4, 4, 4), np.uint8)
    m[0, 0] = (255, 0, 0, 255)  # red: repaint
    m[0, 1] = (255, 255, 255, 0)  # transparent white: keep
    m[0, 2] = (60, 60, 60, 255)  # dark grey: keep
    m[0, 3] = (0, 200, 0, 255)  # green: repaint
    out = repaint_mask(Image.fromarray(m, "RGBA"), (4, 4))
    assert out.dtype == np.uint8 and out[0].tolist() == [255, 0, 0, 255] and not out[1:].any()


def test_bad_masks_and_inputs_are_one_line_before_the_model_loads(tmp_path, capsys):
    """No checkpoint exists here: each of these must be refused before it would be read."""
    ck = ["--checkpoint", str(tmp_path / "missing-checkpoint"), "--out", str(tmp_path / "o.png")]
    cases = [
        (_files(tmp_path, Image.new("RGB", (512, 512))), "--mask marks nothing to repaint"),
        (
            _files(tmp_path, Image.new("L", (300, 200), 255), "small.png"),
            "--mask is 300x200 but --image is 512x512",
        ),
        (["--image", str(tmp_path / "nope.png"), *_files(tmp_path)[2:]], "no such file"),
    ]
    (tmp_path / "not-an-image.png").write_bytes(b"this is text")
    cases.append(
        (["--image", str(tmp_path / "not-an-image.png"), *_files(tmp_path)[2:]], "not a readable image")
    )
    for args, message in cases:
        rc, err = _cli([*ck, *args], capsys)
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    rc, err = _cli(["--checkpoint", "x", "--out", str(tmp_path / "o.gif2"), *_files(tmp_path)], capsys)
    assert rc == 2 and "unknown image suffix '.gif2'" in err


def test_red_mask_repaints_resize_mask_stretches_and_jpg_is_jpeg(trained_checkpoint, tmp_path, capsys):
    red = Image.new("RGB", (256, 256))
    red.paste((255, 0, 0), (64, 64, 192, 192))
    out = str(tmp_path / "o.jpg")
    args = ["--checkpoint", trained_checkpoint, "--steps", "1", "--out", out, "--resize-mask", "--json"]
    assert main(["generate", "pbe", *args, *_files(tmp_path, red)]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["format"] == "JPEG" and r["repaint_fraction"] == pytest.approx(0.25, abs=0.01)
    assert open(out, "rb").read(3) == b"\xff\xd8\xff"  # JPEG bytes, not PNG


def test_model_of_another_kind_is_one_line(tmp_path, capsys):
    from doodleflow.training.registry import Registry

    art = tmp_path / "lora"
    art.mkdir()
    (art / "w.safetensors").write_bytes(b"x")
    Registry().register("editlora-gen", "editlora", str(art), config={})
    rc, err = _cli(["--model", "editlora-gen", "--out", str(tmp_path / "o.png"), *_files(tmp_path)], capsys)
    assert rc == 2 and "is a editlora, not a Paint-by-Example checkpoint" in err, err


def test_composite_keeps_the_photo_outside_the_mask_and_blends_inside_its_edge():
    from doodleflow.training.inference.pbe_composite import alpha, composite_edit, feather_px

    repaint = np.zeros((40, 60), np.uint8)
    repaint[10:30, 20:50] = 255
    a = alpha(repaint, 4)
    assert not a[repaint == 0].any()  # outside: the photo, exactly
    assert a[20, 35] == 1.0 and 0 < a[10, 35] < a[11, 35] < a[13, 35] == 1.0  # a ramp inside the edge
    photo = Image.fromarray(np.full((40, 60, 3), 10, np.uint8))
    edit = Image.new("RGB", (16, 16), (250, 250, 250))  # any size: resized to the photo's
    out = np.asarray(composite_edit(photo, edit, repaint, model_size=120))  # feather: 4 px here
    assert out.shape == (40, 60, 3) and (out[repaint == 0] == 10).all()
    assert (out[20, 35] == 250).all() and 10 < out[10, 35, 0] < 250
    assert feather_px((600, 400), 512) == 9 and feather_px((100, 50), 512) == 2


def _photo_and_mask(tmp_path, size=(600, 400)) -> tuple[str, str, np.ndarray, np.ndarray]:
    image, _, _ = example_triple(1)
    photo = image.convert("RGB").resize(size, Image.BICUBIC)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[100:300, 200:420] = 255
    photo.save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), np.asarray(photo), mask


def test_generate_returns_the_photo_size_with_the_photo_outside_the_mask(
    trained_checkpoint, tmp_path, capsys
):
    photo_path, mask_path, photo, mask = _photo_and_mask(tmp_path)
    f = FIXTURES
    common = ["generate", "pbe", "--checkpoint", trained_checkpoint, "--steps", "1", "--image", photo_path,
              "--mask", mask_path, "--reference", f"{f}/reference/example_1.jpg", "--json"]  # fmt: skip
    out = str(tmp_path / "edit.png")
    assert main([*common, "--out", out]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    r = json.loads(lines[-1])
    note = "photo 600x400 -> 512x512 for the model, the edit back to 600x400; outside the mask: the photo's pixels"
    assert any(line.strip().startswith(f"resized: {note}") for line in lines[:-1]), lines
    edit = np.asarray(Image.open(out))
    assert edit.shape == (400, 600, 3) and r["size"] == [600, 400] and r["input_size"] == [600, 400]
    assert np.array_equal(edit[mask == 0], photo[mask == 0])  # every pixel outside the mask is the photo's
    assert np.abs(edit[150:250, 260:360].astype(int) - photo[150:250, 260:360]).mean() > 5  # the edit
    raw = str(tmp_path / "raw.png")
    assert main([*common, "--out", raw, "--no-composite"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Image.open(raw).size == (512, 512) and r["composite"] is False and "--no-composite" in r["resized"]
    back = np.asarray(Image.open(raw).resize((600, 400), Image.BICUBIC))
    assert np.abs(back[mask == 0].astype(int) - photo[mask == 0]).mean() > 1  # raw: regenerated outside too
