"""The files a user hands `doodleflow generate pbe`: read, checked and turned into a repaint mask
before any model loads, so a bad file costs a second and one line, not a traceback.

Mask semantics: a pixel is repainted when its brightest colour channel is at least half on (>= 128)
and it is not transparent (alpha >= 128): white, red, yellow... all repaint; black, dark grey and
transparent pixels keep the source. Upstream masks (Paint-by-Example's `examples/mask`, PIL mode "1",
white = repaint) read the same. A mask that marks nothing, or one whose size differs from the image's,
is an error: stretching a 300x200 mask over a 512x512 image repaints the wrong place. `resize_mask`
stretches it on purpose (nearest neighbour, so it stays binary).
"""

from __future__ import annotations

import numpy as np
from doodleflow.infra.errors import InputError
from doodleflow.training.inference.image_files import read_image
from PIL import Image

__all__ = ["read_image", "repaint_mask"]

ON = 128  # the brightest channel (and alpha) at or above this repaints


def repaint_mask(mask: Image.Image, image_size: tuple[int, int], resize: bool = False) -> np.ndarray:
    """uint8 (H, W) at the image's size, 255 = repaint, by the rule in this module's docstring."""
    if mask.size != image_size:
        if not resize:
            raise InputError(
                f"--mask is {mask.size[0]}x{mask.size[1]} but --image is {image_size[0]}x{image_size[1]}: "
                "give a mask of the image's size, or --resize-mask to stretch it"
            )
        mask = mask.resize(image_size, Image.Resampling.NEAREST)
    rgba = np.asarray(mask.convert("RGBA"))
    on = (rgba[..., :3].max(axis=-1) >= ON) & (rgba[..., 3] >= ON)
    if not on.any():
        raise InputError(
            "--mask marks nothing to repaint: paint the region white (any pixel with a channel >= 128 "
            "repaints; black and transparent pixels keep the image)"
        )
    return on.astype(np.uint8) * 255
