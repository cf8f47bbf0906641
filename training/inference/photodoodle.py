"""`generate doodle`: an artist's EditLoRA applied to one image, then unloaded.

The LoRA goes in through diffusers' `FluxPipeline.load_lora_weights` (the saved file as any user
would load it) and is always removed afterwards with `unload_lora_weights`: PhotoDoodle's demo app
never unloads, so every request stacks another adapter (issue showlab/PhotoDoodle#20).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass

import numpy as np
import torch
from doodleflow.data.fsutil import atomic_write, filesystem
from doodleflow.infra.errors import InputError
from doodleflow.training.inference.doodle_size import doodle_size
from doodleflow.training.inference.flux_sampler import FluxSamplerConfig, sample
from doodleflow.training.inference.image_files import encode, output_format
from doodleflow.training.photodoodle.config import ConditionConfig, ModelSource
from doodleflow.training.runs.localize import local_file
from PIL import Image, ImageOps, UnidentifiedImageError


def source_of(card: dict) -> ModelSource:
    """The base weights a LoRA was trained on, from its card."""
    b = card["base"]
    return ModelSource(
        preset=b["preset"],
        pretrained=b.get("pretrained"),
        seed=b.get("seed") or 0,
        base_transformer=card.get("base_transformer"),
    )


@contextlib.contextmanager
def lora_applied(model, lora_uri: str, adapter: str):
    """The model with the LoRA loaded; unloaded on exit, also when sampling fails."""
    model.pipe.load_lora_weights(local_file(lora_uri), adapter_name=adapter)
    try:
        yield model
    finally:
        model.pipe.unload_lora_weights()


def read_photo(path: str) -> Image.Image:
    """The image at `path` (local or s3://) as RGB, upright by its EXIF orientation (as pairs are
    ingested: data/orientation.py); one-line InputError naming --image if it is not one."""
    fs, p = filesystem(path)
    try:
        with fs.open(p, "rb") as f:
            raw = Image.open(io.BytesIO(f.read()))
            raw.load()
            img = ImageOps.exif_transpose(raw)
    except FileNotFoundError as e:
        raise InputError(f"--image {path}: no such file") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"--image {path}: not a readable image ({e})") from e
    return img.convert("RGB")


def to_condition(img: Image.Image, height: int, width: int) -> torch.Tensor:
    """An RGB image resized to (height, width) and scaled to [-1, 1], (1, 3, H, W). (The reference
    resizes to (width=768, height=512) first, transposing the aspect; this resizes once, correctly.)"""
    img = img.resize((width, height), Image.Resampling.BILINEAR) if img.size != (width, height) else img
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def load_condition(path: str, height: int, width: int) -> torch.Tensor:
    """`to_condition` of the image file at `path`."""
    return to_condition(read_photo(path), height, width)


def with_trigger(prompt: str, trigger: str | None) -> str:
    """PhotoDoodle's captions end with "by <trigger>"; add it when the prompt lacks it."""
    if not trigger or trigger.lower() in prompt.lower():
        return prompt
    return f"{prompt.rstrip(' .')} by {trigger}"


def signed_image_to_png(image: torch.Tensor) -> bytes:
    """The first image of a (B, 3, H, W) batch in [-1, 1] (the VAE's range) as PNG bytes."""
    arr = ((image[0].permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def doodle(
    model,
    card: dict,
    image: str | Image.Image,
    prompt: str,
    sc: FluxSamplerConfig,
    height: int | None = None,
    width: int | None = None,
    adapter: str = "artist",
) -> tuple[bytes, dict]:
    """(PNG bytes, what was done) for one image (a path or an RGB image) with the LoRA of `card`: at
    the image's aspect and the LoRA's pixel budget, or at `height`/`width` rounded to multiples of 16
    (one given: the other follows the image's aspect); `info["resized"]` says which."""
    photo = read_photo(image) if isinstance(image, str) else image
    (h, w), note = doodle_size(photo.size, card, height, width)
    cond_cfg = ConditionConfig(
        card.get("position_mode", "clone"), tuple(card["offset"]) if card.get("offset") else None
    )
    text = with_trigger(prompt, card.get("trigger"))
    condition = to_condition(photo, h, w)
    with lora_applied(model, card["uri"], adapter):
        out = sample(model, condition, text, sc, cond_cfg)
    return signed_image_to_png(out), {
        "prompt": text,
        "height": h,
        "width": w,
        "input_size": list(photo.size),
        "resized": note,
        "lora": card["uri"],
        "steps": sc.steps,
        "guidance": sc.guidance,
        "seed": sc.seed,
    }


@dataclass(frozen=True)
class DoodleRequest:
    """One `generate doodle`: which image, the edit, where the output goes, and how to sample."""

    image: str
    prompt: str
    out: str
    steps: int = 20  # the reference's inference steps
    guidance: float = 3.5  # FLUX's distilled guidance, as the reference
    seed: int = 0
    run: str | None = None  # a specific training run of the artist (default: the newest)
    height: int | None = None  # default: the image's aspect at the LoRA's pixel budget
    width: int | None = None  # (any size; rounded to multiples of 16)
    # the frozen base weight-only quantized (training/photodoodle/quantize.py); the LoRA stays unfused
    quantize_base: str = "none"


def generate_doodle(store: str, artist: str, req: DoodleRequest) -> dict:
    """Load the artist's newest LoRA (or `run`'s) with its base, edit `image`, write `out` (its format
    follows the suffix: .png, .jpg, .webp)."""
    from doodleflow.training.photodoodle.artifacts import find_lora

    fmt = output_format(req.out)  # an unknown suffix is refused before the model loads
    from doodleflow.training.photodoodle.model import load_model
    from doodleflow.training.photodoodle.quantize import check_platform

    photo = read_photo(req.image)  # a bad --image is one line, before any model loads
    card = find_lora(store, artist, req.run)
    cuda = torch.cuda.is_available()
    check_platform(req.quantize_base, "cuda" if cuda else "cpu")
    model = load_model(source_of(card), torch.bfloat16 if cuda else None, req.quantize_base)
    model.to("cuda" if cuda else "cpu")
    sc = FluxSamplerConfig(
        steps=req.steps,
        guidance=req.guidance,
        seed=req.seed,
        max_sequence_length=card.get("max_sequence_length", 512),
    )
    png, info = doodle(model, card, photo, req.prompt, sc, req.height, req.width, adapter=artist)
    fs, path = filesystem(req.out)
    if os.path.dirname(path) and not req.out.startswith("s3://"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(fs, path, png if fmt == "PNG" else encode(Image.open(io.BytesIO(png)), fmt))
    return {**info, "artist": artist, "out": req.out, "run_id": card.get("run_id")}
