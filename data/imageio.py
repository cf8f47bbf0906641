"""JPEG/PNG decode and encode on libjpeg-turbo (simplejpeg) with a Pillow fallback.

Decoding is the largest cost of curation, so the builder asks for the smallest DCT-scaled decode
(1/2, 1/4, 1/8) that still holds every crop it needs at full output resolution.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import simplejpeg
from PIL import Image


class UnreadableImage(ValueError):
    """The bytes are not a decodable image (truncated, corrupt, not an image)."""


def image_size(buf: bytes) -> tuple[int, int]:
    """(width, height) from the header alone."""
    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(buf)
        return w, h
    except ValueError:
        try:
            with Image.open(io.BytesIO(buf)) as im:
                return im.size
        except Exception as e:  # PIL raises many types for garbage input
            raise UnreadableImage(f"cannot read image header: {e}") from e


def decode_rgb(buf: bytes, min_width: int = 0, min_height: int = 0) -> np.ndarray:
    """HxWx3 uint8 RGB, DCT-scaled down as far as (min_width, min_height) allows.

    `strict=True` turns libjpeg's "premature end of data" warnings into errors, so a truncated file
    is rejected instead of silently padded with grey.
    """
    try:
        return simplejpeg.decode_jpeg(buf, colorspace="RGB", strict=True,
                                      min_width=min_width, min_height=min_height)
    except ValueError as jpeg_error:
        try:  # CMYK JPEGs, PNGs named .jpg: let Pillow try (it also rejects truncated data)
            with Image.open(io.BytesIO(buf)) as im:
                im.load()
                return np.asarray(im.convert("RGB"))
        except Exception as e:
            raise UnreadableImage(f"{jpeg_error}; pillow: {e}") from e


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=quality, colorspace="RGB",
                                  colorsubsampling="420")


def encode_png_gray(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encode failed")
    return buf.tobytes()


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area filter when shrinking (anti-aliased), bilinear when growing; size = (w, h)."""
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if size[0] <= w and size[1] <= h else cv2.INTER_LINEAR
    return cv2.resize(img, size, interpolation=interp)
