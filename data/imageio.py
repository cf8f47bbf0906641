"""JPEG/PNG decode and encode: JPEGs on libjpeg-turbo (simplejpeg) alone, strictly; other formats on Pillow.

Decoding is the largest cost of curation, so the builder asks for the smallest DCT-scaled decode
(1/2, 1/4, 1/8) that still holds every crop it needs at full output resolution. Only those three
scales: libjpeg-turbo has SIMD inverse DCTs for them, while its other M/8 scales run scalar code
and cost 1.3-2x a full decode (measured: 1024x768 q90, full 2.7 ms, 6/8 4.4 ms, 7/8 5.5 ms, 1/2 2.3 ms).
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
import zlib

import cv2
import numpy as np
import simplejpeg
from isal import isal_zlib
from PIL import Image


class UnreadableImage(ValueError):
    """The bytes are not a decodable image (truncated, corrupt, not an image)."""


def image_size(buf: bytes) -> tuple[int, int]:
    """(width, height) from the header alone."""
    if is_jpeg(buf):
        try:
            h, w, _, _ = simplejpeg.decode_jpeg_header(buf)
            return w, h
        except ValueError as e:
            raise UnreadableImage(f"cannot read JPEG header: {e}") from e
    with _pillow(buf) as im:
        return im.size


def is_jpeg(buf: bytes) -> bool:
    return buf[:3] == b"\xff\xd8\xff"


@contextlib.contextmanager
def _pillow(buf: bytes):
    """Pillow for what is not a JPEG (PNG and the other formats it reads), with its warnings turned
    into errors and its messages without the `<_io.BytesIO object at 0x...>` of the stream."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with Image.open(io.BytesIO(buf)) as im:
                yield im
    except UnreadableImage:
        raise
    except Exception as e:  # PIL raises many types for garbage input
        msg = _STREAM_REPR.sub("", str(e)) or type(e).__name__
        raise UnreadableImage(f"not a readable image: {msg}") from e


_STREAM_REPR = re.compile(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def dct_divisor(width: int, height: int, min_width: int, min_height: int) -> int:
    """The largest k in (1, 2, 4, 8) whose 1/k DCT-scaled decode is still >= (min_width, min_height);
    1 (full size) when neither minimum is given."""
    if min_width <= 0 and min_height <= 0:
        return 1
    k = 8
    while k > 1 and (-(-width // k) < min_width or -(-height // k) < min_height):
        k //= 2
    return k


def decode_rgb(buf: bytes, min_width: int = 0, min_height: int = 0) -> np.ndarray:
    """HxWx3 uint8 RGB, DCT-scaled down as far as (min_width, min_height) allows.

    A JPEG is decoded by libjpeg-turbo only, with `strict=True`: every libjpeg warning ("premature end
    of data segment", "bad Huffman code", "N extraneous bytes") is an error, so a truncated or
    corrupt file is rejected with the decoder's message. No other decoder gets a second try at it:
    Pillow decodes such a file "successfully" into visibly garbled pixels. Other formats (a PNG named
    .jpg) go to Pillow, with its warnings as errors too.
    """
    if not is_jpeg(buf):
        with _pillow(buf) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(buf)
        k = dct_divisor(w, h, min_width, min_height)
        # simplejpeg picks the smallest M/8 scale meeting the minimum; asking for exactly 1/k gets 1/k.
        return simplejpeg.decode_jpeg(
            buf, colorspace="RGB", strict=True, min_width=-(-w // k), min_height=-(-h // k)
        )
    except ValueError as e:
        raise UnreadableImage(str(e)) from e


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    return simplejpeg.encode_jpeg(
        np.ascontiguousarray(rgb), quality=quality, colorspace="RGB", colorsubsampling="420"
    )


def encode_png_gray(mask: np.ndarray) -> bytes:
    """A 2-D uint8 array as an 8-bit greyscale PNG, no row filter, deflated by ISA-L at level 1.

    Why not libpng (cv2/Pillow): its zlib deflate was 0.39 ms of a 512x512 mask, ~7% of a sample; ISA-L
    does the same job in 0.07 ms and packs masks (long runs of 0/255) smaller (2.4 KB vs 3.2 KB). No
    per-row filter: unfiltered runs deflate as well, and libpng's adaptive filter search cost 1.5 ms.
    """
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"need a 2-D uint8 mask, got {mask.dtype} {mask.shape}")
    h, w = mask.shape
    raw = np.zeros((h, w + 1), np.uint8)  # each row: filter type 0 (None), then the pixels
    raw[:, 1:] = mask
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", isal_zlib.compress(raw, 1))
        + _png_chunk(b"IEND", b"")
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def halve_to_within_2x(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Halve with a 2x2 box filter while the image is >= 2x `size` = (w, h) on both axes.

    A 2x2 box is INTER_AREA's fast integer path. An odd edge row/column is dropped first: at most one
    source pixel per halving, below what the result can resolve.
    """
    for _ in range(halvings((img.shape[1], img.shape[0]), size)):
        hh, ww = img.shape[0] // 2, img.shape[1] // 2
        img = cv2.resize(img[: 2 * hh, : 2 * ww], (ww, hh), interpolation=cv2.INTER_AREA)
    return img


def halvings(have: tuple[int, int], size: tuple[int, int]) -> int:
    """How many times `halve_to_within_2x` halves an image of `have` = (w, h) on its way to `size`."""
    (w, h), k = have, 0
    while w >= 2 * size[0] and h >= 2 * size[1]:
        w, h, k = w // 2, h // 2, k + 1
    return k


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Anti-aliased shrink or bilinear growth to size = (w, h).

    cv2's INTER_AREA is exact but slow at non-integer ratios (650->512 px RGB: 3.4 ms, bilinear 0.56 ms).
    So: box-halve while the image is still >= 2x the target, then finish bilinearly at a ratio below
    2, where bilinear aliasing is slight (PbE itself resizes bilinearly at any ratio).
    """
    img = halve_to_within_2x(img, size)
    if (img.shape[1], img.shape[0]) == tuple(size):
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
