"""LoRA files: our save -> diffusers' FluxPipeline.load_lora_weights round trip (rank and alpha
kept), unload, checkpoint state round trip, and the OmniEditor merge into a stored base."""

from __future__ import annotations

import os

import pytest
import torch
from doodleflow.training.photodoodle.artifacts import find_lora, find_merged_base, save_lora
from doodleflow.training.photodoodle.config import LoraSettings, ModelSource
from doodleflow.training.photodoodle.lora import add_lora, load_trainable_state_dict, trainable_state_dict
from doodleflow.training.photodoodle.merge import base_identity, merge_omnieditor
from doodleflow.training.photodoodle.model import load_model
from doodleflow.training.photodoodle.tokens import image_ids


def _inputs(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(1, 48, 64, generator=g), encoder_hidden_states=torch.randn(1, 8, 32, generator=g),
                pooled_projections=torch.randn(1, 32, generator=g), timestep=torch.tensor([0.4]),
                img_ids=torch.cat([image_ids(12, 8)] * 2), txt_ids=torch.zeros(8, 3), guidance=torch.tensor([3.5]),
                return_dict=False)  # fmt: skip


@torch.no_grad()
def _out(transformer) -> torch.Tensor:
    return transformer(**_inputs())[0]


def _trained_lora(model, settings: LoraSettings):
    params = add_lora(model.transformer, settings)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in params:  # as if trained: lora_B starts at zero under gaussian init
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return params


def _source(tiny_dir) -> ModelSource:
    return ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir))


def test_lora_round_trip_through_diffusers_loader(tiny_dir, tmp_path):
    from diffusers import FluxPipeline

    store = str(tmp_path / "store")
    model = load_model(_source(tiny_dir))
    base = _out(model.transformer)
    settings = LoraSettings(rank=4, alpha=8.0)  # alpha != rank: the scale must survive the file
    _trained_lora(model, settings)
    trained = _out(model.transformer)
    assert not torch.allclose(trained, base)
    card = save_lora(store, "loras/a/run1", model.transformer, settings, {"artist": "a"})
    assert card["uri"].endswith("pytorch_lora_weights.safetensors") and os.path.exists(card["uri"])

    pipe = FluxPipeline.from_pretrained(tiny_dir)  # a fresh pipeline, as a user outside this project
    pipe.load_lora_weights(card["uri"], adapter_name="a")
    torch.testing.assert_close(_out(pipe.transformer), trained, rtol=1e-5, atol=1e-5)
    pipe.unload_lora_weights()
    assert not any("lora" in n for n, _ in pipe.transformer.named_modules())
    torch.testing.assert_close(_out(pipe.transformer), base, rtol=0, atol=0)


def test_checkpoint_state_round_trip(tiny_dir):
    settings = LoraSettings(rank=4, alpha=4.0)
    a = load_model(_source(tiny_dir))
    _trained_lora(a, settings)
    state = trainable_state_dict(a.transformer)
    assert state and all("lora_" in k for k in state)
    b = load_model(_source(tiny_dir))
    add_lora(b.transformer, settings)
    load_trainable_state_dict(b.transformer, state)
    torch.testing.assert_close(_out(b.transformer), _out(a.transformer), rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not match"):
        load_trainable_state_dict(b.transformer, {k: v for k, v in list(state.items())[1:]})


def test_artist_lora_paths_are_validated_and_newest_is_found(tiny_dir, tmp_path):
    from doodleflow.training.photodoodle.artifacts import artist_lora_rel

    store = str(tmp_path / "store")
    model = load_model(_source(tiny_dir))
    settings = LoraSettings(rank=2, alpha=2.0)
    _trained_lora(model, settings)
    with pytest.raises(ValueError, match="artist name"):
        artist_lora_rel("../../etc", "run")
    save_lora(store, artist_lora_rel("lulu", "r1"), model.transformer, settings, {"steps": 1})
    save_lora(store, artist_lora_rel("lulu", "r2"), model.transformer, settings, {"steps": 2})
    assert find_lora(store, "lulu")["steps"] == 2 and find_lora(store, "lulu", "r1")["steps"] == 1
    with pytest.raises(LookupError):
        find_lora(store, "nobody")


def test_merge_fuses_omnieditor_into_a_stored_base(tiny_dir, tmp_path):
    from diffusers import FluxTransformer2DModel

    store = str(tmp_path / "store")
    src = _source(tiny_dir)
    model = load_model(src)
    settings = LoraSettings(rank=8, alpha=8.0)
    _trained_lora(model, settings)
    with_lora = _out(model.transformer)
    card = save_lora(store, "runs/omnieditor/run1/lora", model.transformer, settings, {})
    merged = merge_omnieditor(store, "run1", src, card["uri"])
    assert merged["transformer"].endswith("models/photodoodle/merged-base/run1/transformer")
    fused = FluxTransformer2DModel.from_pretrained(merged["transformer"])
    assert not any("lora" in n for n, _ in fused.named_modules())
    torch.testing.assert_close(_out(fused), with_lora, rtol=1e-4, atol=1e-5)
    assert find_merged_base(store, base_identity(src))["transformer"] == merged["transformer"]
    assert find_merged_base(store, {**base_identity(src), "seed": 7}) is None
    # the EditLoRA stage loads the merged transformer in place of the preset's
    m2 = load_model(
        ModelSource(preset="tiny", tiny_root=src.tiny_root, base_transformer=merged["transformer"])
    )
    torch.testing.assert_close(_out(m2.transformer), with_lora, rtol=1e-4, atol=1e-5)
