"""Paint-by-Example evaluation on a dataset version's held-out split (Paint-by-Example
`eval_tool/`: `fid/fid_score.py`, `gmm/gmm_score_coco.py`, `clip_score/region_clip_score.py`).

For each held-out sample: repaint the target's masked region with the sample's reference, then score
region CLIP (output cropped to the mask's box vs the reference), FID (outputs vs targets) and, when
GMM weights are given, the quality score; a grid (source | reference | output | target) is saved.
"""

from __future__ import annotations

import io
import os

import numpy as np
import torch
from doodleflow.data.split import is_heldout
from doodleflow.data.store import DatasetStore
from doodleflow.training.eval.clip import region_clip_score
from doodleflow.training.eval.fid import fid
from doodleflow.training.eval.grid import sample_grid
from doodleflow.training.eval.models import EvalModels
from PIL import Image


def heldout_rows(store: str, dataset: str, version: int | None, limit: int) -> tuple[list[dict], dict]:
    """Up to `limit` held-out rows (all rows' images if the split is empty, flagged in the result)."""
    ds = DatasetStore(store, dataset)
    v = ds.resolve(version)
    m = ds.manifest(v)
    h = m.get("heldout", {"fraction": 0.1, "seed": m["config"]["seed"]})
    t = ds.read_table(v, columns=["sample_id", "image_id", "target_jpeg", "mask_png", "reference_jpeg"])
    rows = sorted(t.to_pylist(), key=lambda r: r["sample_id"])
    held = [r for r in rows if is_heldout(r["image_id"], h["fraction"], h["seed"])]
    info = {"dataset": dataset, "version": v, "manifest_hash": m["content_hash"], "heldout": bool(held)}
    return (held or rows)[:limit], info


def _img(buf: bytes, mode: str = "RGB") -> Image.Image:
    return Image.open(io.BytesIO(buf)).convert(mode)


def repaint_all(model, rows: list[dict], steps: int, guidance: float, seed: int) -> list[Image.Image]:
    from doodleflow.training.inference.pbe import paint, prepare

    outs = []
    for i, r in enumerate(rows):
        x, m, ref = prepare(
            _img(r["target_jpeg"]),
            _img(r["mask_png"], "L"),
            _img(r["reference_jpeg"]),
            size=_img(r["target_jpeg"]).size[0],
            clip_size=model.clip_size,
        )
        y = paint(model, x, m, ref, steps=steps, guidance=guidance, seed=seed + i)
        arr = (y[0].permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)
        outs.append(Image.fromarray(arr))
    return outs


def evaluate_pbe(
    model,
    rows: list[dict],
    models: EvalModels,
    out_dir: str,
    steps: int = 50,
    guidance: float = 5.0,
    seed: int = 0,
    gmm: str | None = None,
) -> dict:
    """Scores + grid for `rows` repainted by `model` (a loaded PbEModel); the quality score too when
    `gmm` (an .npz of GMM weights over the same features, see training/eval/quality.py) is given."""
    with torch.no_grad():
        outputs = repaint_all(model, rows, steps, guidance, seed)
    targets = [_img(r["target_jpeg"]) for r in rows]
    masks = [np.asarray(_img(r["mask_png"], "L")) >= 128 for r in rows]
    refs = [_img(r["reference_jpeg"]) for r in rows]
    clip_mean, clip_each = region_clip_score(outputs, masks, refs, models.clip)
    metrics = {
        "region_clip_score": float(clip_mean),
        "fid": float(fid(outputs, targets, models.inception)) if len(rows) > 1 else float("nan"),
    }
    if gmm:
        from doodleflow.training.eval.quality import load_gmm, quality_score

        metrics["quality_score"] = float(quality_score(outputs, load_gmm(gmm), models.inception)[0])
    os.makedirs(out_dir, exist_ok=True)
    sources = [
        Image.fromarray((np.asarray(t) * (1 - m[..., None])).astype(np.uint8))
        for t, m in zip(targets, masks, strict=True)
    ]
    grid = sample_grid(
        [[s, r, o, t] for s, r, o, t in zip(sources, refs, outputs, targets, strict=True)],
        ["source", "reference", "output", "target"],
        os.path.join(out_dir, "samples.png"),
    )
    per_sample = [
        {"sample_id": r["sample_id"], "region_clip_score": float(c)}
        for r, c in zip(rows, clip_each, strict=True)
    ]
    return {
        "metrics": metrics,
        "grid": grid,
        "n": len(rows),
        "per_sample": per_sample,
        "models": models.notes,
        "outputs": outputs,
    }
