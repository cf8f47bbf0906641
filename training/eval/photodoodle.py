"""PhotoDoodle evaluation (the PhotoDoodle paper: CLIP score, CLIP_img; no evaluation code released) on the held-out pairs of an artist's dataset:
CLIP text-image score of the output against the instruction, and CLIP_img of the output against the
source and against the target. The paper's exact CLIP variant is unverified (see training/eval/clip.py).
"""

from __future__ import annotations

import io
import os
import tempfile

from doodleflow.data.split import is_heldout
from doodleflow.data.store import DatasetStore
from doodleflow.training.eval.clip import clip_img_score, clip_text_score
from doodleflow.training.eval.grid import sample_grid
from doodleflow.training.eval.models import EvalModels
from PIL import Image


def heldout_pairs(
    store: str, dataset: str, version: int | None, limit: int, fraction: float = 0.1, seed: int = 0
) -> tuple[list[dict], dict]:
    """Up to `limit` held-out pairs (split by pair id); an artist set too small to hold any out is
    evaluated on its training pairs, and the result says so."""
    ds = DatasetStore(store, dataset)
    v = ds.resolve(version)
    t = ds.read_table(v, columns=["pair_id", "artist", "captions", "source_jpeg", "target_jpeg"])
    rows = sorted(t.to_pylist(), key=lambda r: r["pair_id"])
    held = [r for r in rows if is_heldout(r["pair_id"], fraction, seed)]
    info = {
        "dataset": dataset,
        "version": v,
        "manifest_hash": ds.manifest(v)["content_hash"],
        "heldout": bool(held),
    }
    return (held or rows)[:limit], info


def _img(buf: bytes) -> Image.Image:
    return Image.open(io.BytesIO(buf)).convert("RGB")


def evaluate_doodle(
    model,
    card: dict,
    rows: list[dict],
    models: EvalModels,
    out_dir: str,
    steps: int = 20,
    guidance: float = 3.5,
    seed: int = 0,
) -> dict:
    """Edit each held-out source with the artist's LoRA (`card`), score, and save the grid."""
    from doodleflow.training.inference.flux_sampler import FluxSamplerConfig
    from doodleflow.training.inference.photodoodle import doodle

    outputs, prompts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, r in enumerate(rows):
            path = os.path.join(tmp, f"{i}.jpg")
            with open(path, "wb") as f:
                f.write(r["source_jpeg"])
            sc = FluxSamplerConfig(
                steps=steps,
                guidance=guidance,
                seed=seed + i,
                max_sequence_length=card.get("max_sequence_length", 512),
            )
            png, info = doodle(model, card, path, r["captions"][0], sc)
            outputs.append(_img(png))
            prompts.append(info["prompt"])
    sources = [_img(r["source_jpeg"]).resize(o.size) for r, o in zip(rows, outputs, strict=True)]
    targets = [_img(r["target_jpeg"]).resize(o.size) for r, o in zip(rows, outputs, strict=True)]
    text, _ = clip_text_score(outputs, prompts, models.clip)
    vs_src, _ = clip_img_score(outputs, sources, models.clip)
    vs_tgt, _ = clip_img_score(outputs, targets, models.clip)
    os.makedirs(out_dir, exist_ok=True)
    grid = sample_grid(
        [[s, p, o, t] for s, p, o, t in zip(sources, prompts, outputs, targets, strict=True)],
        ["source", "prompt", "output", "target"],
        os.path.join(out_dir, "samples.png"),
    )
    metrics = {
        "clip_text_score": float(text),
        "clip_img_source": float(vs_src),
        "clip_img_target": float(vs_tgt),
    }
    return {"metrics": metrics, "grid": grid, "n": len(rows), "models": models.notes, "prompts": prompts}
