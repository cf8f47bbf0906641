"""Inference: classifier-free guidance with the learned unconditional vector (Paint-by-Example, `ldm/models/diffusion/plms.py`
and `scripts/inference.py`; diffusers `PaintByExamplePipeline`).

`paint` computes exactly what diffusers' `PaintByExamplePipeline` does (same random draws in the
same order, PLMS/PNDM by default, 50 steps, scale 5; tests compare the two), but takes its mask
through `repaint_to_keep` like training does, so only one function in the package knows the
mask convention.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
import torch.nn.functional as F
from doodleflow.training.inference.image_files import encode, output_format
from doodleflow.training.inference.pbe_inputs import read_image, repaint_mask
from doodleflow.training.pbe.mask import repaint_to_keep
from doodleflow.training.pbe.model import PbEModel
from PIL import Image


def load_for_inference(checkpoint: str) -> PbEModel:
    """A run checkpoint (…/checkpoints/step-NNNNNN, local or s3://) applied to the base model it
    was trained from, or a diffusers Paint-by-Example directory used as is."""
    from doodleflow.training.pbe.config import TrainConfig
    from doodleflow.training.pbe.model import load_model, load_pbe_dir
    from doodleflow.training.registry.bases import verify_run_bases
    from doodleflow.training.runs.rundir import read_checkpoint_uri

    if os.path.exists(os.path.join(checkpoint, "model_index.json")):
        return load_pbe_dir(checkpoint)
    weights, _, state = read_checkpoint_uri(checkpoint)  # verifies the checkpoint's own files
    verify_run_bases(checkpoint)  # and the frozen base it loads with (TamperedArtifact if changed)
    # The base only: these weights replace whatever the run itself was initialised from.
    base = dataclasses.replace(TrainConfig.from_dict(state["config"]).model.source, init_from=None)
    model = load_model(base)
    model.load_trainable_state_dict(weights)
    return model


def prepare(
    image: Image.Image, mask: Image.Image, reference: Image.Image, size: int = 512, clip_size: int = 224
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PIL inputs -> (image (1,3,S,S) in [-1,1], repaint mask uint8 (1,S,S), CLIP-normalized reference).

    The reference is resized straight to the CLIP size with no crop, as PbE's inference script."""
    from doodleflow.training.pbe.data import normalize_reference

    img = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
    m = np.asarray(mask.convert("L").resize((size, size), Image.Resampling.NEAREST))
    ref = np.asarray(reference.convert("RGB").resize((clip_size, clip_size), Image.Resampling.BICUBIC))
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    return x, torch.from_numpy(m.copy())[None], normalize_reference(torch.from_numpy(ref.copy())[None])


def default_scheduler():
    from diffusers import PNDMScheduler
    from doodleflow.training.pbe.presets import SCHEDULER

    return PNDMScheduler(**SCHEDULER)


@torch.no_grad()
def paint(
    model: PbEModel,
    image: torch.Tensor,
    repaint_mask: torch.Tensor,
    reference: torch.Tensor,
    steps: int = 50,
    guidance: float = 5.0,
    seed: int = 0,
    scheduler=None,
) -> torch.Tensor:
    """One image (batch of 1): repaint the white region of `repaint_mask` with the reference.
    Returns the decoded image (1, 3, H, W) in [0, 1]."""
    device = model.device
    sched = scheduler or default_scheduler()
    keep = repaint_to_keep(repaint_mask, binarize=True).to(device)
    masked = image.to(device) * keep
    gen = torch.Generator(device=device).manual_seed(seed)
    cond = model.image_encoder(reference.to(device))
    cfg = guidance > 1.0
    ctx = torch.cat([model.image_encoder.uncond_vector.expand_as(cond), cond]) if cfg else cond
    sched.set_timesteps(steps, device=device)
    sf = model.scaling_factor
    f = 2 ** (len(model.vae.config.block_out_channels) - 1)
    h, w = image.shape[-2] // f, image.shape[-1] // f
    # Draw order as the pipeline: initial noise first, then the masked image's posterior sample.
    latents = torch.randn((1, model.vae.config.latent_channels, h, w), generator=gen, device=device)
    latents = latents * sched.init_noise_sigma
    masked_latents = model.vae.encode(masked).latent_dist.sample(gen) * sf
    mask_latents = F.interpolate(keep, size=(h, w))  # nearest, as diffusers' pipeline
    n = 2 if cfg else 1
    for t in sched.timesteps:
        x = sched.scale_model_input(torch.cat([latents] * n), t)
        x = torch.cat([x, masked_latents.repeat(n, 1, 1, 1), mask_latents.repeat(n, 1, 1, 1)], dim=1)
        eps = model.unet(x, t, encoder_hidden_states=ctx).sample
        if cfg:
            uncond, text = eps.chunk(2)
            eps = uncond + guidance * (text - uncond)
        latents = sched.step(eps, t, latents).prev_sample
    out = model.vae.decode(latents / sf).sample
    return (out / 2 + 0.5).clamp(0, 1)


def unit_image_to_png(img: torch.Tensor) -> bytes:
    """The first image of a (B, 3, H, W) batch in [0, 1] (the sampler's output) as PNG bytes."""
    return encode(unit_image(img), "PNG")


def unit_image(img: torch.Tensor) -> Image.Image:
    """The first image of a (B, 3, H, W) batch in [0, 1] as an RGB PIL image."""
    return Image.fromarray((img[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8))


def generate(
    checkpoint: str,
    image: str,
    mask: str,
    reference: str,
    out: str,
    steps: int = 50,
    guidance: float = 5.0,
    seed: int = 0,
    size: int = 512,
    resize_mask: bool = False,
    composite: bool = True,
) -> dict:
    """Files in, an image out (the `doodleflow generate pbe` command); its format follows `out`'s suffix.

    The model paints at `size` x `size` (B4); with `composite` (default) the edit comes back at the
    photo's size with the pixels outside the mask taken from the photo (training/inference/pbe_composite.py),
    without it the model's raw output is written. `resized` says what was resized, in one line.
    Every input is checked before the model loads (training/inference/pbe_inputs.py has the mask rule)."""
    from doodleflow.training.inference.pbe_composite import composite_edit, resize_note

    im, ref = read_image(image, "--image"), read_image(reference, "--reference")
    repaint = repaint_mask(read_image(mask, "--mask"), im.size, resize_mask)
    fmt = output_format(out)
    model = load_for_inference(checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    x, rm, r = prepare(im, Image.fromarray(repaint), ref, size, model.clip_size)
    edit = unit_image(paint(model, x, rm, r, steps, guidance, seed))
    result = composite_edit(im, edit, repaint, size) if composite else edit
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "wb") as f:
        f.write(encode(result, fmt))
    w, h = im.size
    note = resize_note((w, h), size, composite)
    return {
        "out": os.path.abspath(out),
        "format": fmt,
        "size": list(result.size),
        "input_size": [w, h],
        "model_size": [size, size],
        "composite": composite,
        "resized": note,
        "steps": steps,
        "guidance": guidance,
        "seed": seed,
        "checkpoint": checkpoint,
        "repaint_fraction": float((rm > 127).float().mean()),
    }
