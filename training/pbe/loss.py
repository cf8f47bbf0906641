"""Paint-by-Example's training objective (Paint-by-Example, `ldm/models/diffusion/ddpm.py`:
`p_losses`, and the learnable unconditional vector of classifier-free guidance).

eps-prediction MSE on the DDPM schedule; the UNet sees [noisy latent (4), masked-source latent (4),
keep-mask at latent size (1)]; only the first 4 channels are noised; the whole batch's condition is
replaced by the learned unconditional vector with probability 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from doodleflow.training.pbe.data import PixelBatch
from doodleflow.training.pbe.model import PbEModel


@dataclass
class EncodedBatch:
    """What the frozen encoders make of a batch; also the row format of the latent cache."""

    target_moments: torch.Tensor  # (B, 8, h, w): VAE posterior mean and logvar of the target
    masked_moments: torch.Tensor  # (B, 8, h, w): same for the masked source
    mask_latent: torch.Tensor  # (B, 1, h, w): keep-mask resized to latent size
    clip_pooled: torch.Tensor  # (B, D): CLIP pooled class token of the reference

    def __len__(self) -> int:
        return self.target_moments.shape[0]


@torch.no_grad()
def encode_batch(model: PbEModel, px: PixelBatch) -> EncodedBatch:
    target = model.vae_moments(px.target)
    masked = model.vae_moments(px.masked)
    # The reference trainer resizes the mask with a bilinear tensor Resize (no re-binarizing).
    mask = F.interpolate(px.keep, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return EncodedBatch(target, masked, mask, model.clip_pooled(px.reference))


def diffusion_loss(
    model: PbEModel,
    denoiser: torch.nn.Module,
    enc: EncodedBatch,
    noise_scheduler,
    generator: torch.Generator,
    cond_drop_prob: float,
) -> torch.Tensor:
    """One batch's loss. `denoiser` is `model.denoiser` or its DDP wrapper; all randomness comes
    from `generator`, so a step is reproducible from (seed, rank, step)."""
    device = enc.target_moments.device
    latents = model.sample_latents(enc.target_moments, generator)
    masked = model.sample_latents(enc.masked_moments, generator)
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(device)
    t = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (b,), generator=generator, device=generator.device
    ).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    x = torch.cat([noisy, masked, enc.mask_latent.to(latents.dtype)], dim=1)
    # One draw per batch, not per sample (B2).
    drop = (torch.rand((), generator=generator, device=generator.device) < cond_drop_prob).to(device)
    eps = denoiser(x, t, enc.clip_pooled, drop.float().expand(b))
    return F.mse_loss(eps.float(), noise.float())
