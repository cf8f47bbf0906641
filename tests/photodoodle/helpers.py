"""Helpers of the PhotoDoodle tests (plain functions; fixtures are in conftest.py)."""

from __future__ import annotations

import os

import torch

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "photodoodle"
)
PHOTO = os.path.join(FIXTURES, "1.png")


def make_pair_dataset(
    root: str, store: str, name: str, n: int, style: str | None = None, seed: int = 0
) -> dict:
    """A committed pair dataset of `n` synthetic pairs (one style, named `style` or `name`)."""
    from doodleflow.data.pairs import ingest_pairs_in_process
    from doodleflow.data.pairs_synthetic import write_photodoodle_style

    src = os.path.join(root, f"src-{name}")
    write_photodoodle_style(src, style or name, n, seed=seed, photo_path=PHOTO)
    return ingest_pairs_in_process(src, name, store)


def photo_of(size: tuple[int, int]):
    """A crop of the real photo with the given (w, h), resized: a real image of that shape."""
    from PIL import Image

    photo = Image.open(PHOTO).convert("RGB")
    w, h = size
    cw = min(photo.width, photo.height * w / h)
    return photo.crop((0, 0, int(cw), int(cw * h / w))).resize(size, Image.BILINEAR)


def make_mixed_pair_dataset(
    src: str, store: str, name: str, sizes: list[tuple[int, int]], tag: str = ""
) -> dict:
    """A committed pair dataset (PhotoDoodle layout, one style `name`) with one pair of each (w, h);
    `tag` prefixes the file names (and so changes the pair ids)."""
    import json

    import numpy as np
    from doodleflow.data.pairs import ingest_pairs_in_process
    from doodleflow.data.pairs_synthetic import caption, doodle

    d = os.path.join(src, name)
    os.makedirs(os.path.join(d, "img"), exist_ok=True)
    lines = []
    for i, size in enumerate(sizes):
        before = photo_of(size)
        s, t = f"img/{tag}{i}.jpg", f"img/{tag}{i}_t.jpg"
        before.save(os.path.join(d, s), quality=92)
        doodle(before, np.random.default_rng(i)).save(os.path.join(d, t), quality=92)
        lines.append(json.dumps({"source": s, "target": t, "text": caption(i)}))
    with open(os.path.join(d, "meta.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return ingest_pairs_in_process(src, name, store)


def save_artist_lora(tiny_dir: str, store: str, artist: str = "lulu") -> dict:
    """A LoRA with non-zero weights, saved as a training run would (card included)."""
    from doodleflow.training.photodoodle.artifacts import artist_lora_rel, save_lora
    from doodleflow.training.photodoodle.config import LoraSettings, ModelSource
    from doodleflow.training.photodoodle.lora import add_lora
    from doodleflow.training.photodoodle.merge import base_identity
    from doodleflow.training.photodoodle.model import load_model

    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir))
    model = load_model(source)
    settings = LoraSettings(rank=4, alpha=4.0)
    params = add_lora(model.transformer, settings)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    card = {"stage": "editlora", "artist": artist, "trigger": "sksmonstercalledlulu", "base": base_identity(source),
            "base_transformer": None, "position_mode": "clone", "offset": None, "height": 96, "width": 64,
            "max_sequence_length": 32, "run_id": "r1"}  # fmt: skip
    return save_lora(store, artist_lora_rel(artist, "r1"), model.transformer, settings, card)
