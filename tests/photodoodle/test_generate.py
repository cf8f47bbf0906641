"""Inference: the clean condition is re-injected after every sampler step, the artist's LoRA changes
the result and is unloaded afterwards, and `generate_doodle` edits the real cat photo."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch
from doodleflow.infra.errors import ConfigError, InputError
from doodleflow.training.inference.flux_sampler import FluxSamplerConfig, sample
from doodleflow.training.inference.photodoodle import (
    DoodleRequest,
    doodle,
    generate_doodle,
    load_condition,
    with_trigger,
)
from doodleflow.training.photodoodle.config import ConditionConfig, ModelSource
from doodleflow.training.photodoodle.model import load_model
from PIL import Image

from tests.photodoodle.helpers import PHOTO, save_artist_lora


def _source(tiny_dir) -> ModelSource:
    return ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir))


@pytest.mark.parametrize("mode", ["clone", "kontext"])
def test_condition_is_reinjected_after_every_step(tiny_model, mode):
    seen = []

    def on_step(i, latents, clean):
        n = clean.shape[1]
        seen.append((torch.equal(latents[:, n:], clean), latents[:, :n].clone()))

    cond = load_condition(PHOTO, 96, 64)
    out = sample(
        tiny_model,
        cond,
        "add a halo",
        FluxSamplerConfig(steps=4, max_sequence_length=32),
        ConditionConfig(mode),
        on_step,
    )
    assert out.shape == (1, 3, 96, 64) and out.min() >= -1 and out.max() <= 1
    assert len(seen) == 4 and all(same for same, _ in seen)  # the condition tokens never changed
    assert not torch.equal(seen[0][1], seen[-1][1])  # while the target tokens were denoised


def test_lora_is_applied_then_unloaded(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    card = save_artist_lora(tiny_dir, store)
    model = load_model(_source(tiny_dir))
    before = {k: v.clone() for k, v in model.transformer.state_dict().items()}
    sc = FluxSamplerConfig(steps=2, max_sequence_length=32, seed=3)
    plain = sample(
        model, load_condition(PHOTO, 96, 64), with_trigger("add a monster", "sksmonstercalledlulu"), sc
    )
    for _ in range(2):  # twice: no adapter may pile up (the reference demo leaks one per request)
        png, info = doodle(model, card, PHOTO, "add a monster", sc)
        assert not any("lora" in n for n, _ in model.transformer.named_modules())
        assert model.transformer.state_dict().keys() == before.keys()
        assert all(torch.equal(before[k], v) for k, v in model.transformer.state_dict().items())
    assert info["prompt"] == "add a monster by sksmonstercalledlulu"
    with_lora = torch.tensor(np.array(Image.open(io.BytesIO(png))), dtype=torch.float32)
    plain_px = ((plain[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
    assert (with_lora - plain_px).abs().mean() > 1.0  # the LoRA did change the edit


def test_generate_doodle_on_the_real_photo(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "DOODLEFLOW_HOME", str(tmp_path / "home")
    )  # the base is rebuilt from the card's identity
    store = str(tmp_path / "store")
    save_artist_lora(tiny_dir, store)
    out = str(tmp_path / "out" / "doodle.png")
    r = generate_doodle(
        store, "lulu", DoodleRequest(PHOTO, "add a halo and wings for the cat", out, steps=3, seed=1)
    )
    img = Image.open(out)
    assert img.size == (64, 96) and img.mode == "RGB"
    assert r["prompt"].endswith("by sksmonstercalledlulu") and r["run_id"] == "r1"
    with pytest.raises(LookupError):
        generate_doodle(store, "nobody", DoodleRequest(PHOTO, "x", out))
    with pytest.raises(ValueError, match="artist name"):
        generate_doodle(store, "../lulu", DoodleRequest(PHOTO, "x", out))


def test_generate_doodle_writes_the_format_its_suffix_names(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DOODLEFLOW_HOME", str(tmp_path / "home"))
    store = str(tmp_path / "store")
    save_artist_lora(tiny_dir, store)
    out = str(tmp_path / "doodle.jpg")
    generate_doodle(store, "lulu", DoodleRequest(PHOTO, "add a halo", out, steps=2, seed=1))
    with open(out, "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff"  # JPEG bytes, not PNG bytes under a .jpg name
    assert Image.open(out).format == "JPEG"
    with pytest.raises(ConfigError, match="unknown image suffix"):
        generate_doodle(store, "lulu", DoodleRequest(PHOTO, "x", str(tmp_path / "doodle.xyz")))
    assert not os.path.exists(tmp_path / "doodle.xyz")


@pytest.mark.parametrize(
    "photo,asked,size,said",
    [
        # no size asked: the photo's aspect at the LoRA's budget (768x512 card: 393,216 px)
        (
            (768, 512),
            (None, None),
            (512, 768),
            "photo 768x512 -> 768x512 (w x h): its aspect at the LoRA's 393,216-px budget",
        ),
        ((600, 400), (None, None), (512, 768), "photo 600x400 -> 768x512"),
        ((1000, 1000), (None, None), (624, 624), "photo 1000x1000 -> 624x624"),
        ((1080, 1920), (None, None), (832, 480), "photo 1080x1920 -> 480x832"),
        # asked (height, width): rounded to multiples of 16; one side given, the other keeps the aspect
        ((768, 512), (70, 100), (64, 96), "100x70 (w x h) asked, rounded to 96x64 (sides multiples of 16)"),
        ((768, 512), (None, 100), (64, 96), "100x66.7 (w x h) asked, rounded to 96x64"),
        ((768, 512), (512, 768), (512, 768), "768x512 (w x h) as asked"),
    ],
)
def test_doodle_size_keeps_the_aspect_or_rounds_what_is_asked(photo, asked, size, said):
    from doodleflow.training.inference.doodle_size import doodle_size

    got, note = doodle_size(photo, {"height": 768, "width": 512}, *asked)
    assert got == size and said in note, note
    h, w = got
    if asked == (None, None) or None in asked:  # the photo's aspect, within rounding to 16
        assert abs(math.log((w / h) / (photo[0] / photo[1]))) < 0.1
    with pytest.raises(ConfigError, match="--width must be a positive number of pixels"):
        doodle_size(photo, {"height": 768, "width": 512}, 64, 0)


def test_generate_doodle_at_any_size_keeps_a_landscape_photo_landscape(tiny_dir, tmp_path, monkeypatch):
    """The shapes of the issue: a 768x512 photo came back 64x96 (portrait), and --width 100 was a
    reshape traceback. Now it is 96x64, and 100 is rounded to 96 with the height following the photo."""
    monkeypatch.setenv("DOODLEFLOW_HOME", str(tmp_path / "home"))
    store = str(tmp_path / "store")
    save_artist_lora(tiny_dir, store)
    photo = str(tmp_path / "landscape.jpg")
    Image.open(PHOTO).convert("RGB").crop((0, 0, 500, 333)).resize((768, 512)).save(photo)
    out = str(tmp_path / "d.png")
    r = generate_doodle(store, "lulu", DoodleRequest(photo, "add a halo", out, steps=2, seed=1))
    assert Image.open(out).size == (96, 64) and r["input_size"] == [768, 512]
    assert r["resized"].startswith(
        "size: photo 768x512 -> 96x64 (w x h): its aspect at the LoRA's 6,144-px budget"
    )
    r = generate_doodle(store, "lulu", DoodleRequest(photo, "add a halo", out, steps=2, seed=1, width=100))
    assert Image.open(out).size == (96, 64) and "100x66.7 (w x h) asked, rounded to 96x64" in r["resized"]
    with pytest.raises(InputError, match="--image .*nope.png: no such file"):
        generate_doodle(store, "lulu", DoodleRequest(str(tmp_path / "nope.png"), "x", out))
