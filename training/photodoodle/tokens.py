"""Latents <-> tokens, and the position ids of target and condition tokens (PhotoDoodle, showlab/PhotoDoodle
`train_lora_flux_pe.py` and `src/pipeline_pe_clone.py`, `position_encoding_clone`).

FLUX packs 16-channel latents into 2x2 patches: (B, 16, h, w) -> (B, h/2 * w/2, 64). PhotoDoodle
appends the clean condition's tokens after the noisy target's, and gives the condition token at
(r, c) exactly the target's id (0, r, c). The alternatives kept for comparison: FLUX Kontext's index
channel 1, and OminiControl's (row, col) shift.
"""

from __future__ import annotations

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.config import ConditionConfig


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C), the patch order of diffusers' `FluxPipeline._pack_latents`."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of `pack` for latents of height h and width w."""
    b, _, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """FLUX's ids (0, row, col) of the packed grid of an h x w latent, shape (h/2 * w/2, 3)."""
    rows = torch.arange(h // 2, device=device, dtype=dtype)
    cols = torch.arange(w // 2, device=device, dtype=dtype)
    ids = torch.zeros(h // 2, w // 2, 3, device=device, dtype=dtype)
    ids[..., 1] = rows[:, None]
    ids[..., 2] = cols[None, :]
    return ids.reshape(-1, 3)


def condition_ids(target: torch.Tensor, cfg: ConditionConfig, packed_width: int) -> torch.Tensor:
    """The condition tokens' ids, derived from the target's."""
    ids = target.clone()
    if cfg.position_mode == "kontext":
        ids[:, 0] = 1
    elif cfg.position_mode == "offset":
        dr, dc = cfg.offset if cfg.offset is not None else (0, -packed_width)
        ids[:, 1] += dr
        ids[:, 2] += dc
    elif cfg.position_mode != "clone":
        raise ConfigError(f"unknown --position-mode {cfg.position_mode!r}: use clone, kontext or offset")
    return ids


def sequence_ids(h: int, w: int, cfg: ConditionConfig, device=None, dtype=torch.float32) -> torch.Tensor:
    """ids of [target tokens | condition tokens], shape (2 * h/2 * w/2, 3)."""
    target = image_ids(h, w, device, dtype)
    return torch.cat([target, condition_ids(target, cfg, w // 2)], dim=0)


def text_ids(length: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """All zeros, as FLUX's pipeline (and PhotoDoodle's prompt helper) builds them."""
    return torch.zeros(length, 3, device=device, dtype=dtype)
