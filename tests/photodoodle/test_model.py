"""The tiny FLUX preset and PhotoDoodle's conditioning: position ids, a never-noised condition, and a
loss that only sees the target tokens."""

from __future__ import annotations

import json
import os

import pytest
import torch
from doodleflow.training.photodoodle.config import ConditionConfig
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.photodoodle.loss import EncodedBatch, flow_matching_loss
from doodleflow.training.photodoodle.tokens import image_ids, pack

H, W = 12, 8  # latents of a 96x64 image; 6x4 = 24 tokens per image


def _batch(model, b: int = 2, seed: int = 0) -> EncodedBatch:
    g = torch.Generator().manual_seed(seed)
    embeds, pooled = model.encode_text(["add a halo by sksmagiceffects"] * b, 32)
    return EncodedBatch(
        torch.randn(b, 16, H, W, generator=g),
        torch.randn(b, 16, H, W, generator=g),
        TextCondition(embeds, pooled),
    )


def _capture(transformer):
    seen = {}

    def hook(_mod, args, kwargs):
        seen.update({k: v.detach().clone() for k, v in kwargs.items() if torch.is_tensor(v)})

    return seen, transformer.register_forward_pre_hook(hook, with_kwargs=True)


def _loss(model, enc, mode: str = "clone", seed: int = 1, offset=None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return flow_matching_loss(
        model.transformer,
        enc,
        model.pipe.scheduler,
        g,
        ConditionConfig(position_mode=mode, offset=offset),
        1.0,
    )


def test_tiny_preset_is_a_diffusers_flux_directory(tiny_dir, tiny_model):
    with open(os.path.join(tiny_dir, "model_index.json")) as f:
        index = json.load(f)
    assert index["_class_name"] == "FluxPipeline"
    assert index["transformer"] == ["diffusers", "FluxTransformer2DModel"]
    assert index["tokenizer_2"][1].startswith("T5Tokenizer")
    t = tiny_model.transformer.config
    assert (t.num_layers, t.num_single_layers, t.in_channels, t.guidance_embeds) == (1, 1, 64, True)
    assert tiny_model.vae_scale_factor == 8 and tiny_model.vae.config.latent_channels == 16
    m = tiny_model.vae_moments(torch.zeros(1, 3, 96, 64))
    assert m.shape == (1, 32, 12, 8)


@pytest.mark.parametrize("mode", ["clone", "kontext", "offset"])
def test_condition_token_position_ids(tiny_model, mode):
    seen, handle = _capture(tiny_model.transformer)
    with torch.no_grad():
        _loss(tiny_model, _batch(tiny_model), mode)
    handle.remove()
    ids = seen["img_ids"]
    n = (H // 2) * (W // 2)
    target, cond = ids[:n], ids[n:]
    assert ids.shape == (2 * n, 3) and torch.equal(target, image_ids(H, W))
    if mode == "clone":  # PhotoDoodle: the condition token at (r, c) has exactly the target's id
        assert torch.equal(cond, target)
    elif mode == "kontext":
        assert torch.all(cond[:, 0] == 1) and torch.equal(cond[:, 1:], target[:, 1:])
    else:  # OminiControl's subject shift: (0, -packed width)
        assert torch.equal(cond[:, 1], target[:, 1]) and torch.equal(cond[:, 2], target[:, 2] - W // 2)


def test_condition_is_never_noised_and_target_is(tiny_model):
    enc = _batch(tiny_model)
    seen, handle = _capture(tiny_model.transformer)
    with torch.no_grad():
        _loss(tiny_model, enc)
    handle.remove()
    n = (H // 2) * (W // 2)
    hidden = seen["hidden_states"]
    assert hidden.shape == (2, 2 * n, 64)
    assert torch.equal(hidden[:, n:], pack(enc.cond))  # bit-identical clean condition
    assert not torch.allclose(hidden[:, :n], pack(enc.target))
    assert seen["guidance"].tolist() == [1.0, 1.0]  # the training-time guidance embedding value


def test_loss_ignores_the_condition_tokens(tiny_model):
    from doodleflow.training.photodoodle.config import LoraSettings
    from doodleflow.training.photodoodle.lora import add_lora

    params = add_lora(tiny_model.transformer, LoraSettings(rank=4, alpha=4))
    enc = _batch(tiny_model)
    n = (H // 2) * (W // 2)

    def loss_and_grads(shift_cond: float, shift_target: float):
        def hook(_mod, _args, out):
            out[0][:, n:] += shift_cond
            out[0][:, :n] += shift_target
            return out

        h = tiny_model.transformer.register_forward_hook(hook)
        tiny_model.transformer.zero_grad()
        loss = _loss(tiny_model, enc)
        loss.backward()
        h.remove()
        return loss.detach(), [p.grad.clone() for p in params]

    base_loss, base_grads = loss_and_grads(0.0, 0.0)
    cond_loss, cond_grads = loss_and_grads(1e3, 0.0)  # garbage on the condition tokens' outputs
    assert torch.equal(base_loss, cond_loss)
    assert all(torch.equal(a, b) for a, b in zip(base_grads, cond_grads, strict=True))
    tgt_loss, _ = loss_and_grads(0.0, 1.0)
    assert tgt_loss > base_loss + 0.5  # the target tokens are what the loss measures
