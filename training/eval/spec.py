"""What one evaluation scores and how: one object handed whole from a flow to the evaluation task."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalSpec:
    """Score a model on the held-out split of `dataset` (at `version`, default its latest) in `store`.

    `clip_dir`/`inception_dir`: real CLIP ViT-B/32 and FID-Inception directories (None: tiny random
    models, so the figures are only comparable with each other); `gmm`: the quality score's weights."""

    store: str
    dataset: str
    version: int | None = None
    samples: int = 4  # held-out samples to evaluate
    steps: int = 50  # sampler steps per sample
    seed: int = 0
    clip_dir: str | None = None
    inception_dir: str | None = None  # PbE only (FID)
    gmm: str | None = None  # PbE only (quality score)
