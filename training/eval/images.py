"""Image conversions shared by the metrics: PIL / uint8 arrays in, float tensors out.

OpenAI CLIP's `preprocess` is reproduced here because PbE's FID and QS scripts feed it to their
feature network (see quality.py); it is torchvision's Resize(n) (shorter side, PIL bicubic),
CenterCrop(n), ToTensor and Normalize, applied to a PIL image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

ImageLike = Image.Image | np.ndarray

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_pil(image: ImageLike) -> Image.Image:
    """RGB PIL image from a PIL image or a uint8 (H, W) / (H, W, 3|4) array."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"arrays must be uint8, got {image.dtype}")
        image = Image.fromarray(image)
    return image.convert("RGB")


def to_tensor(image: ImageLike) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1], as torchvision's ToTensor."""
    arr = np.asarray(to_pil(image), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def to_mask(mask: ImageLike) -> np.ndarray:
    """(H, W) uint8 mask; colour masks are read by their first channel, as cv2 grayscale would."""
    arr = np.asarray(mask.convert("L") if isinstance(mask, Image.Image) else mask)
    return arr[..., 0] if arr.ndim == 3 else arr


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel (x - mean) / std on (..., 3, H, W)."""
    m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1)
    return (x - m) / s


def clip_preprocess(
    image: ImageLike, size: int = 224, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
) -> torch.Tensor:
    """OpenAI CLIP's preprocess: shorter side -> `size` (bicubic), centre crop, normalize."""
    img = to_pil(image)
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    # torchvision Resize(int) truncates the long side: int(size * long / short).
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    # torchvision CenterCrop: int(round(...)); Python 3 round() already returns an int.
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    img = img.crop((left, top, left + size, top + size))
    return normalize(to_tensor(img), mean, std)


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]
