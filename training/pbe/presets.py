"""Architectures as data: the tiny preset (tests, demo, CPU bench) and the full-size SD1 UNet (GPU bench).

The tiny preset keeps every structural feature of the real model (9-channel UNet with cross-attention,
an 8x-downsampling VAE with 4 blocks, a CLIP vision tower feeding PbE's mapper) at a size that trains
on a CPU. It is written to disk as a diffusers Paint-by-Example directory and loaded back through
the same `from_pretrained` path as released weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid

import torch
from doodleflow.training.core.hf import quiet_hf

TINY_UNET = dict(
    sample_size=64,
    in_channels=9,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(16, 32, 32),
    # Attention only at the coarsest level: at 64x64 latents self-attention over 4096 tokens
    # would dominate a CPU step.
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
)
# 4 down blocks = 8x downsampling, as SD's VAE (fewer blocks make 512px latents huge and slow).
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=1,
    norm_num_groups=4,
    block_out_channels=(8, 8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=512,
    scaling_factor=0.18215,
)
# 4 layers -> PbE's mapper gets (4 + 1) // 5 = 1 block; projection_dim = the UNet's context width.
TINY_CLIP = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=224,
    patch_size=32,
    projection_dim=32,
)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Released PbE / SD v1 inference scheduler (PLMS = PNDM without Runge-Kutta warm-up).
SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    skip_prk_steps=True,
    set_alpha_to_one=False,
    steps_offset=1,
)

# SD v1.x UNet with PbE's 9 input channels and one 768-wide context token (B1).
SD1_UNET = dict(
    sample_size=64,
    in_channels=9,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
)
SD1_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    sample_size=512,
    scaling_factor=0.18215,
)
CLIP_L14 = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=768,
    hidden_act="quick_gelu",
)


def image_processor(size: int):
    """CLIP preprocessing built in code: resize straight to `size` (no crop, as PbE's scripts), CLIP stats."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        do_resize=True,
        size={"height": size, "width": size},
        do_center_crop=False,
        crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        resample=3,
    )


def random_components(unet_cfg: dict, vae_cfg: dict, clip_cfg: dict, seed: int = 0) -> dict:
    """UNet, VAE and PbE image encoder with random weights (deterministic under `seed`)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPVisionConfig

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    encoder = PaintByExampleImageEncoder(CLIPVisionConfig(**clip_cfg), proj_size=clip_cfg["projection_dim"])
    return {"unet": unet, "vae": vae, "image_encoder": encoder}


def _fingerprint(*cfgs: dict) -> str:
    return hashlib.sha256(json.dumps(cfgs, sort_keys=True, default=list).encode()).hexdigest()[:8]


def _build_atomically(build, final: str) -> str:
    """Build into a temp dir, then rename: a killed build never leaves a half-written preset."""
    if os.path.exists(os.path.join(final, "model_index.json")):
        return final
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    tmp = f"{final}.tmp-{uuid.uuid4().hex}"
    build(tmp)
    try:
        os.rename(tmp, final)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def save_tiny_pbe(root: str, seed: int = 0) -> str:
    """Write (once) the tiny preset as a diffusers Paint-by-Example directory; returns its path."""
    from diffusers import PaintByExamplePipeline, PNDMScheduler

    quiet_hf()

    def build(path: str) -> None:
        parts = random_components(TINY_UNET, TINY_VAE, TINY_CLIP, seed)
        pipe = PaintByExamplePipeline(
            **parts,
            scheduler=PNDMScheduler(**SCHEDULER),
            safety_checker=None,
            feature_extractor=image_processor(TINY_CLIP["image_size"]),
        )
        pipe.save_pretrained(path)

    final = os.path.join(root, f"pbe-tiny-{_fingerprint(TINY_UNET, TINY_VAE, TINY_CLIP)}-s{seed}")
    return _build_atomically(build, final)


def save_tiny_sd1(root: str, seed: int = 0) -> tuple[str, str]:
    """A tiny Stable-Diffusion-v1-layout dir (4-channel UNet, VAE, scheduler) and a tiny CLIP vision
    dir, to exercise the start-of-training path (`sd1`) without real weights. Returns (sd_dir, clip_dir)."""
    from diffusers import PNDMScheduler

    quiet_hf()

    def build_sd(path: str) -> None:
        parts = random_components({**TINY_UNET, "in_channels": 4}, TINY_VAE, TINY_CLIP, seed)
        parts["unet"].save_pretrained(os.path.join(path, "unet"))
        parts["vae"].save_pretrained(os.path.join(path, "vae"))
        PNDMScheduler(**SCHEDULER).save_pretrained(os.path.join(path, "scheduler"))
        with open(os.path.join(path, "model_index.json"), "w") as f:
            json.dump({"_class_name": "StableDiffusionPipeline"}, f)

    def build_clip(path: str) -> None:
        from transformers import CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(seed + 1)
        CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(path)
        image_processor(TINY_CLIP["image_size"]).save_pretrained(path)
        with open(os.path.join(path, "model_index.json"), "w") as f:  # marks the dir complete
            json.dump({"_class_name": "CLIPVisionModel"}, f)

    tag = f"{_fingerprint(TINY_UNET, TINY_VAE, TINY_CLIP)}-s{seed}"
    return (
        _build_atomically(build_sd, os.path.join(root, f"sd1-tiny-{tag}")),
        _build_atomically(build_clip, os.path.join(root, f"clip-tiny-{tag}")),
    )
