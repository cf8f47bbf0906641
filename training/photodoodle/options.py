"""A run's TrainConfig from the flat options a CLI command or a flow parameter list carries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from doodleflow.data.names import validate_name
from doodleflow.training.photodoodle.config import ModelSource, PositionMode, Preset, Stage, TrainConfig


@dataclass(frozen=True)
class RunOptions:
    """Everything a user may set for one LoRA job; None keeps the stage's default."""

    store: str
    dataset: str
    artist: str | None = None
    preset: Preset = "tiny"
    pretrained: str | None = None
    base: str | None = None  # EditLoRA base transformer: None = newest merged base, "plain", or a dir/URI
    steps: int = 100
    checkpoint_every: int | None = None
    rank: int | None = None
    alpha: float | None = None
    position_mode: PositionMode = "clone"
    lr: float | None = None
    height: int | None = None
    width: int | None = None
    cache: str | None = None
    workers: int = 1
    use_gpu: bool = False
    seed: int = 0
    run_name: str | None = None
    resume: bool = False

    def with_artist(self, artist: str, dataset: str) -> RunOptions:
        return dataclasses.replace(self, artist=artist, dataset=dataset)


def build_config(stage: Stage, o: RunOptions) -> TrainConfig:
    if o.artist is not None:
        validate_name(o.artist, "artist name")
    validate_name(o.dataset, "dataset name")
    cfg = TrainConfig.for_stage(stage, o.preset, pretrained=o.pretrained, store=o.store, dataset=o.dataset,
                                artist=o.artist, steps=o.steps, workers=o.workers, use_gpu=o.use_gpu, seed=o.seed,
                                run_name=o.run_name, resume=o.resume,
                                checkpoint_every=o.checkpoint_every or max(1, min(500, o.steps // 2)))  # fmt: skip
    lora = {k: v for k, v in (("rank", o.rank), ("alpha", o.alpha)) if v is not None}
    if "rank" in lora and "alpha" not in lora:
        lora["alpha"] = float(lora["rank"])  # PhotoDoodle: alpha = rank
    data = {k: v for k, v in (("height", o.height), ("width", o.width), ("cache", o.cache)) if v is not None}
    source = ModelSource(preset=o.preset, pretrained=o.pretrained, base_transformer=o.base)
    return cfg.replace(
        model={"source": source, "lora": dataclasses.replace(cfg.model.lora, **lora),
               "condition": dataclasses.replace(cfg.model.condition, position_mode=o.position_mode)},
        data=data, optim={"lr": o.lr} if o.lr is not None else {},
    )  # fmt: skip
