"""A user's image files: read and checked before any model loads (one line naming the flag), and a
generated image written where the user asked, in the format its suffix names."""

from __future__ import annotations

import io
import os

from doodleflow.infra.errors import ConfigError, InputError
from PIL import Image, ImageOps, UnidentifiedImageError


def read_image(path: str, flag: str) -> Image.Image:
    """The image at `path`, fully decoded and turned upright by its EXIF orientation (a phone photo and
    a mask drawn on its upright view are one frame); one-line InputError naming the flag if it is not one."""
    if not os.path.isfile(path):
        raise InputError(f"{flag} {path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{flag} {path}: not a readable image ({e})") from e


def output_format(path: str) -> str:
    """The image format `path`'s suffix names (PNG, JPEG, WEBP...), as Pillow calls it."""
    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ConfigError(f"--out {path}: unknown image suffix {ext!r}; use .png, .jpg or .webp")
    return fmt


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()
