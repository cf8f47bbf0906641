"""Dataset rows -> model inputs, in two stages.

1. `decode_rows` (CPU, runs inside Ray Data's `map_batches`): JPEG/PNG bytes -> uint8 arrays, resized
   to the training resolution. uint8 keeps the object store traffic 4x smaller than floats.
2. `pixel_batch` (on the training device): uint8 arrays -> normalized float tensors, the keep-mask
   (through `repaint_to_keep`, the only mask conversion) and the masked source.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from doodleflow.data.imageio import decode_rgb, resize
from doodleflow.infra.errors import InputError
from doodleflow.training.pbe.mask import repaint_to_keep
from doodleflow.training.pbe.presets import CLIP_MEAN, CLIP_STD

SAMPLE_COLUMNS = ["target_jpeg", "mask_png", "reference_jpeg"]


def _rgb(buf: bytes, size: int) -> np.ndarray:
    img = decode_rgb(buf)
    return img if img.shape[:2] == (size, size) else resize(img, (size, size))


def _gray(buf: bytes, size: int) -> np.ndarray:
    m = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise InputError("mask_png is not a decodable PNG")
    return m if m.shape == (size, size) else resize(m, (size, size))


def decode_rows(batch: dict, resolution: int = 512, ref_size: int = 224) -> dict[str, np.ndarray]:
    """{target_jpeg, mask_png, reference_jpeg: bytes} -> {target (B,R,R,3), mask (B,R,R), reference (B,S,S,3)}."""
    return {
        "target": np.stack([_rgb(b, resolution) for b in batch["target_jpeg"]]),
        "mask": np.stack([_gray(b, resolution) for b in batch["mask_png"]]),
        "reference": np.stack([_rgb(b, ref_size) for b in batch["reference_jpeg"]]),
    }


@dataclass
class PixelBatch:
    target: torch.Tensor  # (B, 3, R, R) in [-1, 1]
    keep: torch.Tensor  # (B, 1, R, R), 1 = keep (PbE convention), possibly soft
    reference: torch.Tensor  # (B, 3, S, S), CLIP-normalized

    @property
    def masked(self) -> torch.Tensor:
        # A2: inpaint_image = GT * mask, so the hole becomes 0 = mid-grey in [-1, 1].
        return self.target * self.keep

    def __len__(self) -> int:
        return self.target.shape[0]


def _to_tensor(x, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x)).to(device, non_blocking=True)


def normalize_reference(ref_uint8_nhwc: torch.Tensor) -> torch.Tensor:
    x = ref_uint8_nhwc.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def pixel_batch(arrays: dict, device: torch.device | str = "cpu", binarize_mask: bool = False) -> PixelBatch:
    """uint8 arrays from `decode_rows` (numpy or torch) -> float tensors on `device`."""
    target = _to_tensor(arrays["target"], device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    keep = repaint_to_keep(_to_tensor(arrays["mask"], device), binarize=binarize_mask)
    return PixelBatch(
        target=target, keep=keep, reference=normalize_reference(_to_tensor(arrays["reference"], device))
    )
