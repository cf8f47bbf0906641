"""PhotoDoodle's sampler (showlab/PhotoDoodle src/pipeline_pe_clone.py, `FluxPipeline.__call__`; settings from inference.py).

The latents hold [noise tokens | clean condition tokens]. The FLUX flow-matching Euler scheduler
steps the whole sequence, and after every step the condition part is reset to the clean tokens
(latents * mask + clean * (1 - mask)), so the condition never drifts. The shift `mu` is computed
from the doubled sequence length, as the reference does. No KV cache: the condition tokens are
recomputed at every step. Distilled guidance only (no true CFG): 3.5 by default, 20 steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from doodleflow.training.photodoodle.config import ConditionConfig
from doodleflow.training.photodoodle.forward import TextCondition, predict
from doodleflow.training.photodoodle.tokens import pack, sequence_ids, unpack


@dataclass(frozen=True)
class FluxSamplerConfig:
    steps: int = 20
    guidance: float = 3.5
    seed: int = 0
    max_sequence_length: int = 512


def _timesteps(scheduler, steps: int, seq_len: int, device) -> torch.Tensor:
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    c = scheduler.config
    mu = calculate_shift(
        seq_len,
        c.get("base_image_seq_len", 256),
        c.get("max_image_seq_len", 4096),
        c.get("base_shift", 0.5),
        c.get("max_shift", 1.15),
    )
    sigmas = np.linspace(1.0, 1 / steps, steps)
    return retrieve_timesteps(scheduler, steps, device, sigmas=sigmas, mu=mu)[0]


def _autocast(model):
    if model.device.type == "cuda" and next(model.transformer.parameters()).dtype == torch.bfloat16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def sample(
    model,
    condition: torch.Tensor,
    prompt: str,
    cfg: FluxSamplerConfig,
    cond_cfg: ConditionConfig | None = None,
    on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    text: TextCondition | None = None,
) -> torch.Tensor:
    """condition: (1, 3, H, W) in [-1, 1] -> the edited image (1, 3, H, W) in [-1, 1].
    `on_step(i, latents, clean)` sees the token sequence after each step (tests, previews).
    `text`: the prompt already encoded (samples while training encode theirs once)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    device = model.device
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    if text is None:
        text = TextCondition(*model.encode_text([prompt], cfg.max_sequence_length))
    text = TextCondition(text.embeds.to(device), text.pooled.to(device))
    cond = model.sample_latents(
        model.vae_moments(condition.to(device)), g
    )  # latent_dist.sample(), as the reference
    h, w = cond.shape[-2:]
    clean = pack(cond)
    n = clean.shape[1]
    noise = torch.randn(cond.shape, generator=g, device=device, dtype=torch.float32)
    latents = torch.cat([pack(noise), clean], dim=1)
    clean_seq = torch.cat([torch.zeros_like(clean), clean], dim=1)
    mask = torch.zeros(1, 2 * n, 1, device=device)
    mask[:, :n] = 1.0  # 1 on target tokens, 0 on condition tokens
    ids = sequence_ids(h, w, cond_cfg or ConditionConfig(), device)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config)
    guidance = cfg.guidance if model.guidance_embeds else None
    for i, t in enumerate(_timesteps(scheduler, cfg.steps, latents.shape[1], device)):
        with _autocast(model):
            v = predict(model.transformer, latents, (t / 1000).expand(1).to(device), text, ids, guidance)
        latents = scheduler.step(v.float(), t, latents, return_dict=False)[0]
        latents = latents * mask + clean_seq * (1 - mask)  # re-inject the clean condition
        if on_step is not None:
            on_step(i, latents, clean)
    return model.decode(unpack(latents[:, :n], h, w))
