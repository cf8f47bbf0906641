"""Paint-by-Example samples while training (training/runtime/previews.py): each held-out sample's
image, mask and reference, repainted by the run's own model with `training/inference/pbe.py:paint` (the
`PaintByExamplePipeline` computation), the same seed per row at every sampling point."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from doodleflow.training.runs.heldout_rows import RowPick, heldout_rows
from doodleflow.training.runtime.previews import PreviewInputs, Previews, readable_image
from PIL import Image

COLUMNS = ("target_jpeg", "mask_png", "reference_jpeg")


def _triple(r: dict) -> tuple:
    return (
        readable_image(r["target_jpeg"]),
        readable_image(r["mask_png"], "L"),
        readable_image(r["reference_jpeg"]),
    )


def masked_source(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The image with its repaint region greyed out: what the model is asked to fill."""
    img = np.asarray(image.convert("RGB")).copy()
    hole = np.asarray(mask.convert("L").resize(image.size, Image.Resampling.NEAREST)) >= 128
    img[hole] = 127
    return Image.fromarray(img)


def pbe_previews(trainer, run, tracker=None) -> Callable[[int], Previews] | None:
    """Rank 0's sampler for a PbE run as a function of the step the run resumed at (inputs read and
    prepared here, once), or None when sampling is off (`--sample-every 0`)."""
    from doodleflow.training.inference.pbe import paint, prepare, unit_image

    cfg, model = trainer.cfg, trainer.model
    s = cfg.sample
    if s.every <= 0 or s.inputs <= 0:
        return None
    rows, heldout = heldout_rows(
        cfg.run.store, cfg.run.dataset, cfg.run.version, RowPick("image_id", COLUMNS, s.inputs)
    )
    # An unreadable row is left out here: training's decode reports it.
    triples = [t for r in rows if None not in (t := _triple(r))]
    if not triples:
        return None
    size = cfg.data.resolution
    prepared = [prepare(im, m, ref, size=size, clip_size=model.clip_size) for im, m, ref in triples]
    inputs = PreviewInputs(
        ["input", "reference"], [[masked_source(im, m), ref] for im, m, ref in triples], heldout
    )

    def render() -> list[Image.Image]:
        with trainer.autocast():
            return [
                unit_image(paint(model, x, m, r, s.steps, s.guidance, s.seed + i))
                for i, (x, m, r) in enumerate(prepared)
            ]

    modules = [model.unet, model.image_encoder, model.vae, model.denoiser]
    return lambda resume_step: Previews(run, s, inputs, render, modules, trainer.device, tracker, resume_step)
