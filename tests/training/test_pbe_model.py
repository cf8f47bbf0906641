"""The Paint-by-Example model: mask convention, the three ways in, and the trainable/frozen split."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from doodleflow.training.pbe.mask import repaint_to_keep
from doodleflow.training.pbe.model import load_pbe_dir, load_sd1_clip
from doodleflow.training.pbe.presets import TINY_CLIP, TINY_UNET, TINY_VAE, random_components, save_tiny_sd1

from .conftest import example_triple


def test_mask_conversion_values_and_polarity():
    m = np.array([[0, 255], [128, 127]], dtype=np.uint8)
    keep = repaint_to_keep(m)
    assert keep.shape == (1, 2, 2) and keep.dtype == torch.float32
    assert keep[0, 0, 0] == 1.0 and keep[0, 0, 1] == 0.0  # 0 = keep, 255 = repaint
    assert keep[0, 1, 0] == pytest.approx(1 - 128 / 255) and keep[0, 1, 1] == pytest.approx(1 - 127 / 255)
    assert repaint_to_keep(m, binarize=True)[0].tolist() == [[1.0, 0.0], [0.0, 1.0]]  # 0.498 < 0.5 <= 0.502
    batch = repaint_to_keep(torch.zeros(3, 5, 7, dtype=torch.uint8))
    assert batch.shape == (3, 1, 5, 7) and bool((batch == 1).all())
    with pytest.raises(TypeError):
        repaint_to_keep(np.zeros((2, 2), dtype=np.float32))


def test_mask_conversion_matches_diffusers_pipeline_on_soft_masks():
    from diffusers.pipelines.deprecated.paint_by_example.pipeline_paint_by_example import (
        prepare_mask_and_masked_image,
    )
    from PIL import Image

    rng = np.random.default_rng(0)
    soft = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    image = Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    ref_mask, _ = prepare_mask_and_masked_image(image, Image.fromarray(soft))
    assert torch.equal(repaint_to_keep(soft, binarize=True)[None], ref_mask)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_example_masks_mark_the_repaint_region_white(k):
    _, mask, _ = example_triple(k)
    m = np.asarray(mask.convert("L"))
    keep = repaint_to_keep(m, binarize=True)[0].numpy()
    ys, xs = np.nonzero(keep == 0)
    # SOURCES.md bboxes of the white (repaint) regions: the hole must be exactly there.
    bbox = {1: (184, 133, 442, 424), 2: (32, 78, 371, 512), 3: (99, 0, 387, 416)}[k]
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == bbox
    assert 0 < (keep == 0).mean() < 0.5


def test_tiny_preset_is_a_diffusers_pbe_dir_that_loads_back_identically(tiny_dir):
    with open(os.path.join(tiny_dir, "model_index.json")) as f:
        assert json.load(f)["_class_name"] == "PaintByExamplePipeline"
    model = load_pbe_dir(tiny_dir)
    fresh = random_components(TINY_UNET, TINY_VAE, TINY_CLIP, seed=0)
    for name in ("unet", "vae", "image_encoder"):
        want, got = fresh[name].state_dict(), getattr(model, name).state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k], got[k]) for k in want), name
    assert model.unet.config.in_channels == 9
    assert model.feature_extractor is not None and model.feature_extractor.do_center_crop is False


def test_trainable_and_frozen_parts(tiny_model):
    names = set(tiny_model.trainable_state_dict())
    heads = {n.split(".")[1] for n in names if n.startswith("image_encoder.")}
    assert heads == {"mapper", "final_layer_norm", "proj_out", "uncond_vector"}
    assert {n for n in names if not n.startswith("image_encoder.")} == {
        f"unet.{k}" for k in tiny_model.unet.state_dict()
    }
    assert not any(p.requires_grad for p in tiny_model.vae.parameters())
    assert not any(p.requires_grad for p in tiny_model.image_encoder.model.parameters())
    assert all(p.requires_grad for p in tiny_model.denoiser.parameters())


def test_condition_head_equals_diffusers_encoder_and_drops_to_uncond(tiny_model):
    torch.manual_seed(0)
    ref = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = tiny_model.image_encoder(ref)  # diffusers' PaintByExampleImageEncoder.forward
        head = tiny_model.denoiser.image_encoder
        pooled = tiny_model.clip_pooled(ref)
        assert torch.allclose(head(pooled), want, atol=1e-6)
        mixed = head(pooled, torch.tensor([0.0, 1.0]))
    assert torch.allclose(mixed[0], want[0], atol=1e-6)
    assert torch.equal(mixed[1], tiny_model.image_encoder.uncond_vector[0])


def test_sd1_start_widens_conv_in_with_zeros_and_keeps_the_sd_function(models_root):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPVisionModel

    sd_dir, clip_dir = save_tiny_sd1(models_root, seed=0)
    model = load_sd1_clip(sd_dir, clip_dir)
    sd_unet = UNet2DConditionModel.from_pretrained(sd_dir, subfolder="unet")
    w = model.unet.conv_in.weight
    assert w.shape[1] == 9 and model.unet.config.in_channels == 9
    assert torch.equal(w[:, :4], sd_unet.conv_in.weight) and bool((w[:, 4:] == 0).all())
    # Zero-initialised extra channels: the widened UNet computes what SD's UNet did, whatever they hold.
    torch.manual_seed(0)
    x4, extra, ctx = torch.randn(1, 4, 16, 16), torch.randn(1, 5, 16, 16), torch.randn(1, 1, 32)
    with torch.no_grad():
        a = sd_unet(x4, 10, encoder_hidden_states=ctx).sample
        b = model.unet(torch.cat([x4, extra], 1), 10, encoder_hidden_states=ctx).sample
    assert torch.allclose(a, b, atol=1e-5)
    clip = CLIPVisionModel.from_pretrained(clip_dir).state_dict()
    enc = model.image_encoder.model.state_dict()
    assert all(torch.equal(clip[k], enc[k]) for k in clip)
    assert model.image_encoder.proj_out.out_features == model.unet.config.cross_attention_dim
