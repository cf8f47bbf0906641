"""Small synthetic before/after editing pairs in both ingest layouts (tests, demo, benchmarks).

"Before" is a photo (a crop of a real one when given, else a smooth synthetic scene); "after" is the
same frame with a drawn halo, star doodles and a wobbly outline: an edit a style LoRA can learn.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image, ImageDraw

TRIGGER = "sksmagiceffects"


def _scene(rng: np.random.Generator, size: tuple[int, int], photo: Image.Image | None) -> Image.Image:
    w, h = size
    if photo is not None:  # a random crop of the photo, same aspect as the output, then resized
        pw, ph = photo.size
        cw = int(min(pw, ph * w / h) * rng.uniform(0.6, 1.0))
        ch = int(cw * h / w)
        x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
        return photo.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.Resampling.BILINEAR)
    y, x = np.mgrid[0:h, 0:w]
    base = rng.integers(40, 200, size=3)
    img = np.stack(
        [base[c] + 50 * np.sin(x / (9 + 3 * c)) + 40 * np.cos(y / (13 + 2 * c)) for c in range(3)], -1
    )
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def doodle(before: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The "after" image: a halo over the subject, a few stars, an outline."""
    im = before.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.15, 0.3)
    rx, ry = w * 0.22, h * 0.05
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=(255, 220, 40), width=max(1, w // 24))
    for _ in range(3):
        sx, sy, r = w * rng.uniform(0.1, 0.9), h * rng.uniform(0.4, 0.9), w * 0.05
        d.line([sx - r, sy, sx + r, sy], fill=(255, 255, 255), width=1)
        d.line([sx, sy - r, sx, sy + r], fill=(255, 255, 255), width=1)
    d.rectangle([1, 1, w - 2, h - 2], outline=(20, 20, 20), width=1)
    return im


def make_pairs(
    n: int, seed: int = 0, size: tuple[int, int] = (64, 96), photo_path: str | None = None
) -> list[tuple[Image.Image, Image.Image]]:
    rng = np.random.default_rng(seed)
    photo = Image.open(photo_path).convert("RGB") if photo_path else None
    out = []
    for _ in range(n):
        before = _scene(rng, size, photo)
        out.append((before, doodle(before, rng)))
    return out


def caption(i: int, trigger: str = TRIGGER) -> str:
    things = ["a halo and stars", "a golden halo", "sparkles and a halo", "a halo and an outline"]
    return f"add {things[i % len(things)]} to the picture by {trigger}"


def write_photodoodle_style(
    root: str,
    style: str,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (64, 96),
    photo_path: str | None = None,
    trigger: str = TRIGGER,
) -> str:
    """`<root>/<style>/{meta.jsonl, source/N.jpg, target/N.jpg}`, captions as PhotoDoodle's `text`
    key (every third one a list of two captions). Returns the style folder."""
    d = os.path.join(root, style)
    os.makedirs(os.path.join(d, "source"), exist_ok=True)
    os.makedirs(os.path.join(d, "target"), exist_ok=True)
    lines = []
    for i, (before, after) in enumerate(make_pairs(n, seed, size, photo_path)):
        before.save(os.path.join(d, "source", f"{i}.jpg"), quality=92)
        after.save(os.path.join(d, "target", f"{i}.jpg"), quality=92)
        text = [caption(i, trigger), caption(i + 1, trigger)] if i % 3 == 2 else caption(i, trigger)
        lines.append(json.dumps({"source": f"source/{i}.jpg", "target": f"target/{i}.jpg", "text": text}))
    with open(os.path.join(d, "meta.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return d


def write_plain_folder(
    root: str,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (64, 96),
    photo_path: str | None = None,
    trigger: str = TRIGGER,
) -> str:
    """`<root>/{N.jpg, N_blend.jpg, N.txt}` (the layout third-party PhotoDoodle code uses)."""
    os.makedirs(root, exist_ok=True)
    for i, (before, after) in enumerate(make_pairs(n, seed, size, photo_path)):
        before.save(os.path.join(root, f"{i}.jpg"), quality=92)
        after.save(os.path.join(root, f"{i}_blend.jpg"), quality=92)
        with open(os.path.join(root, f"{i}.txt"), "w") as f:
            f.write(caption(i, trigger) + "\n")
    return root
