"""The one place that knows both mask conventions.

Dataset rows (`mask_png`) and user mask files mark the region to *repaint* with 255 (soft, bilinear
edges allowed). Paint-by-Example's UNet was trained on the opposite polarity: 1 = keep, 0 = hole
(Paint-by-Example `scripts/inference.py` computes 1 - m/255). Everything else in training/ calls `repaint_to_keep` and never inverts a
mask itself.
"""

from __future__ import annotations

import numpy as np
import torch


def repaint_to_keep(mask: np.ndarray | torch.Tensor, binarize: bool = False) -> torch.Tensor:
    """uint8 repaint mask [..., H, W] (255 = repaint) -> float32 keep mask [..., 1, H, W] (1 = keep).

    `binarize=True` thresholds at 0.5 exactly as PbE's inference script and diffusers'
    `prepare_mask_and_masked_image` do; training keeps soft edges, as the reference trainer does
    (it never re-binarizes its resized mask: `ldm/data/open-images.py`).
    """
    m = torch.tensor(mask) if isinstance(mask, np.ndarray) else mask  # copy: decoded arrays may be read-only
    if m.dtype != torch.uint8:
        raise TypeError(f"repaint mask must be uint8 (0..255, 255 = repaint), got {m.dtype}")
    keep = 1.0 - m.to(torch.float32) / 255.0
    if binarize:
        keep = (keep >= 0.5).to(torch.float32)
    return keep.unsqueeze(-3)
