"""One transformer call on [target tokens | condition tokens], shared by training and sampling.

No attention mask and one timestep for every token (C5): the condition tokens are modulated by the
target's t like the rest; they are kept clean by never noising them, not by a separate timestep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from doodleflow.training.photodoodle.tokens import text_ids


@dataclass
class TextCondition:
    embeds: torch.Tensor  # T5 sequence (B, L, D)
    pooled: torch.Tensor  # pooled CLIP (B, P)


def predict(
    transformer,
    tokens: torch.Tensor,
    sigma: torch.Tensor,
    text: TextCondition,
    img_ids: torch.Tensor,
    guidance: float | None,
) -> torch.Tensor:
    """The velocity prediction for every image token (B, S, 64). `sigma` in [0, 1] per sample;
    `guidance` is the distilled-guidance value (None for a model without the guidance embedding)."""
    b = tokens.shape[0]
    g = (
        torch.full((b,), float(guidance), device=tokens.device, dtype=tokens.dtype)
        if guidance is not None
        else None
    )
    return transformer(
        hidden_states=tokens,
        timestep=sigma.to(tokens.dtype),
        guidance=g,
        pooled_projections=text.pooled.to(tokens.dtype),
        encoder_hidden_states=text.embeds.to(tokens.dtype),
        txt_ids=text_ids(text.embeds.shape[1], tokens.device, tokens.dtype),
        img_ids=img_ids.to(tokens.device, tokens.dtype),
        return_dict=False,
    )[0]
