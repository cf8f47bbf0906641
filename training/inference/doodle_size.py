"""The size `generate doodle` samples at: the photo's aspect at the LoRA's pixel budget, or the size the
user asked for rounded to the model's multiple; either way one line says what was done.

FLUX needs sides that are multiples of 16 (8x VAE, then 2x2 patches): any other size used to end in a
reshape error inside the packing. The budget is the LoRA card's trained height x width (393,216 px for
768x512), so an edit costs what a training step's image did.
"""

from __future__ import annotations

from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.buckets import MULTIPLE, Buckets, round_to


def doodle_size(
    photo: tuple[int, int], card: dict, height: int | None = None, width: int | None = None
) -> tuple[tuple[int, int], str]:
    """((height, width) to sample at, one line saying why) for a photo of (width, height) pixels."""
    pw, ph = photo
    for flag, v in (("--height", height), ("--width", width)):
        if v is not None and v < 1:
            raise ConfigError(f"{flag} must be a positive number of pixels, got {v}")
    if height is None and width is None:
        budget = int(card["height"]) * int(card["width"])
        h, w = Buckets.for_run(int(card["height"]), int(card["width"]), "bucket").assign(pw, ph)
        return (h, w), (
            f"size: photo {pw}x{ph} -> {w}x{h} (w x h): its aspect at the LoRA's {budget:,}-px budget, "
            f"sides multiples of {MULTIPLE}"
        )
    asked_h = height if height is not None else width * ph / pw  # one side given: the other keeps the aspect
    asked_w = width if width is not None else height * pw / ph
    h, w = round_to(asked_h), round_to(asked_w)
    asked = f"{_px(asked_w)}x{_px(asked_h)}"
    if (h, w) == (asked_h, asked_w):
        return (h, w), f"size: {w}x{h} (w x h) as asked"
    return (h, w), f"size: {asked} (w x h) asked, rounded to {w}x{h} (sides multiples of {MULTIPLE})"


def _px(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"
