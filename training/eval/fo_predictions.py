"""An `output` slice in a version's FiftyOne dataset: a registered PbE model's repaint of each held-out
sample, with its evaluation score as a field, so a user can sort by the worst."""

from __future__ import annotations

import os

from doodleflow.data.inspection.fo_build import fiftyone_name
from doodleflow.infra.errors import ConfigError
from doodleflow.training.eval.clip import region_clip_score
from doodleflow.training.eval.models import load_eval_models
from doodleflow.training.eval.pbe import _img, heldout_rows, repaint_all
from doodleflow.training.registry.refs import PBE_CHECKPOINT


def add_predictions(
    store: str,
    dataset: str,
    version: int | None,
    model_ref: str,
    home: str,
    samples: int = 8,
    steps: int = 50,
    clip_dir: str | None = None,
    seed: int = 0,
) -> dict:
    import fiftyone as fo
    import numpy as np
    from doodleflow.training.inference.pbe import load_for_inference
    from doodleflow.training.registry import Registry
    from fiftyone import ViewField as F

    reg = Registry(home=home).resolve(model_ref)  # verified before loading
    if reg.kind != PBE_CHECKPOINT:
        raise ConfigError(f"{model_ref} is a {reg.kind}: predictions are for Paint-by-Example checkpoints")
    rows, info = heldout_rows(store, dataset, version, samples)
    d = fo.load_dataset(fiftyone_name(dataset, info["version"]))
    outputs = repaint_all(load_for_inference(reg.uri), rows, steps, 5.0, seed)
    masks = [np.asarray(_img(r["mask_png"], "L")) >= 128 for r in rows]
    _, scores = region_clip_score(
        outputs, masks, [_img(r["reference_jpeg"]) for r in rows], load_eval_models(home, clip_dir).clip
    )
    tag = f"{reg.name}:{reg.version}"
    out_dir = os.path.join(home, "cache", "predictions", reg.name, f"v{reg.version}")
    os.makedirs(out_dir, exist_ok=True)
    old = d.select_group_slices("output").match(F("model") == tag) if "output" in d.group_slices else []
    if len(old):
        d.delete_samples(old)  # re-running replaces this model's outputs
    targets = {
        s["sample_id"]: s
        for s in d.select_group_slices("target").match(F("sample_id").is_in([r["sample_id"] for r in rows]))
    }
    new = []
    for r, out, score in zip(rows, outputs, scores, strict=True):
        path = os.path.join(out_dir, f"{r['sample_id']}.png")
        out.save(path)
        t = targets[r["sample_id"]]
        new.append(
            fo.Sample(
                filepath=path,
                group=fo.Group(id=t.group.id).element("output"),
                model=tag,
                sample_id=r["sample_id"],
                image_id=r["image_id"],
                label_name=t["label_name"],
                region_clip_score=float(score),
            )
        )
    d.add_samples(new, progress=False)
    return {
        "name": d.name,
        "model": tag,
        "outputs": len(new),
        "heldout": info["heldout"],
        "mean_region_clip_score": float(np.mean(scores)) if len(scores) else None,
    }
