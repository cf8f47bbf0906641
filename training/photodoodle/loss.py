"""The flow-matching loss of PhotoDoodle (PhotoDoodle, showlab/PhotoDoodle `train_lora_flux_pe.py`).

x_t = (1 - sigma) x0 + sigma * noise on the target latents only; the clean condition latents are
appended as tokens; the model predicts the velocity noise - x0, and the MSE is taken over the target
tokens alone (the output is sliced to its first N tokens). sigma is drawn as the training script
does with `weighting_scheme none`: u ~ U(0, 1) indexes the scheduler's 1000 training sigmas, which
carry no shift for FLUX-dev (dynamic shifting applies at inference only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from doodleflow.training.photodoodle.config import ConditionConfig
from doodleflow.training.photodoodle.forward import TextCondition, predict
from doodleflow.training.photodoodle.tokens import pack, sequence_ids


@dataclass
class EncodedBatch:
    target: torch.Tensor  # (B, 16, h, w) shifted+scaled latents of the "after" image
    cond: torch.Tensor  # (B, 16, h, w) of the "before" image, never noised
    text: TextCondition

    def __len__(self) -> int:
        return self.target.shape[0]


def sample_sigmas(scheduler, batch: int, generator: torch.Generator) -> torch.Tensor:
    """u ~ U(0,1) -> index into the scheduler's training sigmas (1.0 ... 0.001)."""
    n = scheduler.config.num_train_timesteps
    u = torch.rand(batch, generator=generator, device=generator.device)
    idx = (u * n).long().clamp(max=n - 1).cpu()
    return scheduler.sigmas[idx].float()


def noisy_sequence(enc: EncodedBatch, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """[packed noisy target | packed clean condition] (B, 2N, 64)."""
    s = sigma.view(-1, 1, 1, 1).to(enc.target.device)
    noisy = (1.0 - s) * enc.target + s * noise
    return torch.cat([pack(noisy), pack(enc.cond)], dim=1)


def flow_matching_loss(
    transformer,
    enc: EncodedBatch,
    scheduler,
    generator: torch.Generator,
    cond_cfg: ConditionConfig,
    guidance: float | None,
) -> torch.Tensor:
    x0 = enc.target.float()
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    sigma = sample_sigmas(scheduler, x0.shape[0], generator).to(x0.device)
    tokens = noisy_sequence(enc, sigma, noise)
    h, w = x0.shape[-2:]
    ids = sequence_ids(h, w, cond_cfg, x0.device)
    n_target = (h // 2) * (w // 2)
    pred = predict(transformer, tokens, sigma, enc.text, ids, guidance)[:, :n_target]
    return F.mse_loss(pred.float(), pack(noise - x0).float())
