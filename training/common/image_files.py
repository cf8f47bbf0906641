"""Writing a generated image where the user asked: the format follows the output's suffix."""

from __future__ import annotations

import io
import os

from doodleflow.infra.errors import ConfigError
from PIL import Image


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
