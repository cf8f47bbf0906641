"""What one evaluation scores and how: one object handed whole from a flow to the evaluation task."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EvalSpec:
    """Score a model on the held-out split of `dataset` (at `version`, default its latest) in `store`
    (`doodleflow eval`: None for either is the one the model was trained on).

    `clip_dir`/`inception_dir`: real CLIP ViT-B/32 and FID-Inception directories (None: tiny random
    models, so the figures are only comparable with each other); `gmm`: the quality score's weights."""

    store: str | None = None
    dataset: str | None = None
    version: int | None = None
    samples: int = 4  # held-out samples to evaluate
    steps: int | None = None  # sampler steps per sample; None: the family's default (below)
    seed: int = 0
    clip_dir: str | None = None
    inception_dir: str | None = None  # PbE only (FID)
    gmm: str | None = None  # PbE only (quality score)

    def with_defaults(self, kind: str, store: str, dataset: str) -> EvalSpec:
        """Where it was left None: the model's store and dataset, the family's sampler steps (PbE's
        50, the DDIM count of its official evaluation; PhotoDoodle's 20)."""
        from doodleflow.training.registry.refs import PBE_CHECKPOINT

        steps = self.steps or (50 if kind == PBE_CHECKPOINT else 20)
        return replace(self, store=self.store or store, dataset=self.dataset or dataset, steps=steps)

    @classmethod
    def after_training(cls, publish, store: str, dataset: str, version: int | None) -> EvalSpec:
        """The evaluation after a training run, from its family's `PublishConfig` (its `eval_*`
        fields; a family without FID or the quality score has no `eval_inception` / `eval_gmm`)."""
        return cls(
            store,
            dataset,
            version,
            samples=publish.eval_samples,
            steps=publish.eval_steps,
            clip_dir=publish.eval_clip,
            inception_dir=getattr(publish, "eval_inception", None),
            gmm=getattr(publish, "eval_gmm", None),
        )
