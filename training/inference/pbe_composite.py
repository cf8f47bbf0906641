"""The edit back at the photo's shape: the model's square output resized to the photo, and only the
masked region taken from it.

Paint-by-Example works on 512x512 (B4): the photo and mask are stretched to that square, and the
decoded image is the whole square, regenerated outside the mask too (the VAE round trip alone changes
every pixel). Neither PbE's `scripts/inference.py` nor diffusers' `PaintByExamplePipeline` composites.
`generate pbe` resizes the output back to the photo's size and blends it in with an alpha that is 0
outside the mask (there the pixels are the photo's, exactly), rising to 1 over `FEATHER` model pixels
inside its edge, so the seam at the mask's border is soft rather than a hard step.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

FEATHER = 8  # model pixels (one latent cell at the VAE's 8x) over which the edit fades into the photo


def feather_px(photo_size: tuple[int, int], model_size: int) -> int:
    """`FEATHER` model pixels in photo pixels (at least 1)."""
    return max(1, round(FEATHER * max(photo_size) / model_size))


def alpha(repaint: np.ndarray, feather: int) -> np.ndarray:
    """float32 (H, W) in [0, 1] from a 0/255 repaint mask: 0 wherever the mask keeps the photo, the
    distance to the nearest kept pixel / `feather` inside, capped at 1."""
    inside = (repaint > 127).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return np.minimum(dist / float(feather), 1.0).astype(np.float32)


def composite_edit(
    photo: Image.Image, edit: Image.Image, repaint: np.ndarray, model_size: int
) -> Image.Image:
    """`edit` (any size) resized to `photo`'s size, blended into it where `repaint` (0/255, photo size)
    marks the region: outside it every pixel equals the photo's."""
    rgb = photo.convert("RGB")
    if edit.size != rgb.size:
        edit = edit.resize(rgb.size, Image.Resampling.BICUBIC)
    a = alpha(repaint, feather_px(rgb.size, model_size))[..., None]
    p = np.asarray(rgb, dtype=np.float32)
    out = p * (1.0 - a) + np.asarray(edit.convert("RGB"), dtype=np.float32) * a
    out = np.where(a > 0, np.clip(np.round(out), 0, 255), p)  # exactly the photo's bytes outside
    return Image.fromarray(out.astype(np.uint8))


def resize_note(photo_size: tuple[int, int], model_size: int, composited: bool) -> str:
    """One line: what `generate pbe` resized, and where the output's pixels come from."""
    w, h = photo_size
    s = f"{model_size}x{model_size}"
    if not composited:
        return f"photo {w}x{h} -> {s} for the model; written as the model made it, {s} (--no-composite)"
    return (
        f"photo {w}x{h} -> {s} for the model, the edit back to {w}x{h}; outside the mask: the photo's "
        f"pixels (edge blended over {FEATHER} model px)"
    )
