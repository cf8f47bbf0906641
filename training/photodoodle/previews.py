"""PhotoDoodle samples while training (training/runtime/previews.py): held-out pairs' sources with
their first caption, plus each `--sample-prompt` on the first source, edited by the run's own FLUX
with its LoRA active (`training/inference/flux_sampler.py:sample`, showlab/PhotoDoodle's sampler), the
same seed per row at every sampling point. The prompts are encoded once, before the text encoders
leave the GPU (cached runs)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.runs.heldout_rows import RowPick, heldout_rows
from doodleflow.training.runtime.previews import PreviewInputs, Previews, readable_image
from PIL import Image


def _pixels(img: Image.Image, height: int, width: int) -> torch.Tensor:
    """As generate.load_condition: RGB resized once to (height, width), in [-1, 1], (1, 3, H, W)."""
    arr = np.asarray(img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)).copy()
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def _image(signed: torch.Tensor) -> Image.Image:
    arr = ((signed[0].permute(1, 2, 0).float().cpu().numpy() + 1.0) * 127.5).round().clip(0, 255)
    return Image.fromarray(arr.astype(np.uint8))


def doodle_previews(trainer, run, plan: dict, tracker=None) -> Callable[[int], Previews] | None:
    """Rank 0's sampler for a LoRA run as a function of the step the run resumed at (inputs read and
    prompts encoded here, once: call it before a cached run releases the text encoders), or None
    when sampling is off (`--sample-every 0`)."""
    from doodleflow.training.inference.flux_sampler import FluxSamplerConfig, sample
    from doodleflow.training.inference.photodoodle import with_trigger

    cfg, model = trainer.cfg, trainer.model
    s, d = cfg.sample, cfg.data
    if s.every <= 0 or (s.inputs <= 0 and not s.prompts):
        return None
    where = ("artist", plan["artist_filter"]) if plan.get("artist_filter") else None
    pick = RowPick("pair_id", ("source_jpeg", "captions"), max(s.inputs, 1), where)
    rows, heldout = heldout_rows(cfg.run.store, cfg.run.dataset, cfg.run.version, pick)
    # An unreadable row is left out here: training's decode reports it (UnreadableImage, quarantine).
    readable = [(src, r) for r in rows if (src := readable_image(r["source_jpeg"])) is not None]
    sources = [src for src, _ in readable]
    cases = [(src, r["captions"][0]) for src, r in readable][: s.inputs]
    cases += [(sources[0], p) for p in s.prompts] if sources else []
    if not cases:
        return None
    prompts = [with_trigger(p, plan.get("trigger")) for _, p in cases]
    texts = [TextCondition(*model.encode_text([p], d.max_sequence_length)) for p in prompts]
    buckets = d.buckets()  # each source at its training bucket (one size with --aspect stretch)
    conds = [_pixels(src, *buckets.assign(*src.size)) for src, _ in cases]
    inputs = PreviewInputs(
        ["source", "prompt"], [[src, p] for (src, _), p in zip(cases, prompts, strict=True)]
    )
    inputs.heldout = heldout

    def render() -> list[Image.Image]:
        out = []
        for i, (cond, text) in enumerate(zip(conds, texts, strict=True)):
            sc = FluxSamplerConfig(s.steps, s.guidance, s.seed + i, d.max_sequence_length)
            out.append(_image(sample(model, cond, "", sc, cfg.model.condition, text=text)))
        return out

    modules = [model.transformer, model.vae]
    return lambda resume_step: Previews(run, s, inputs, render, modules, trainer.device, tracker, resume_step)
