"""Typed configuration of a PhotoDoodle run (OmniEditor or EditLoRA), one dataclass per concern.

Defaults follow PhotoDoodle's code (seed-algorithms.md C2-C4): LoRA on the attention and FFN
projections with alpha = rank and gaussian init, AdamW lr 1e-4 / wd 1e-4 / constant schedule,
grad-clip 1.0, batch 1 at 768x512 (h x w), T5 length 512, guidance embedding 1.0 while training.
Rank per stage: OmniEditor high (128, the rank of the released `pretrain.safetensors`), EditLoRA low
(16) as the issue asks; the reference EditLoRA scripts use 128 (`--rank 128 --alpha 128`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from doodleflow.infra.errors import ConfigError
from doodleflow.training.common.config import SectionedConfig, short_hash

Stage = Literal["omnieditor", "editlora"]
Preset = Literal["tiny", "flux-dev"]
PositionMode = Literal["clone", "kontext", "offset"]

# showlab/PhotoDoodle train_lora_flux_pe.py: every double block's attention and both FFNs, and
# q/k/v of the single blocks (their proj_mlp/proj_out, the norms and x_embedder are not adapted).
PHOTODOODLE_TARGETS = (
    "attn.to_k", "attn.to_q", "attn.to_v", "attn.to_out.0",
    "attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
)  # fmt: skip
STAGE_RANK = {"omnieditor": 128, "editlora": 16}
# The tiny preset trains at the reference's 3:2 (h:w) aspect, 8x smaller.
PRESET_DATA = {"tiny": {"height": 96, "width": 64, "max_sequence_length": 32},
               "flux-dev": {"height": 768, "width": 512, "max_sequence_length": 512}}  # fmt: skip


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from; every kind loads from local directories only.

    tiny:     small FLUX configs built in code, saved under `tiny_root`, loaded back like flux-dev;
    flux-dev: a local diffusers FLUX.1-dev directory (`pretrained`).
    `base_transformer` replaces the transformer (the merged OmniEditor base for EditLoRA): a local
    diffusers transformer dir or a store URI of one.
    """

    preset: Preset = "tiny"
    pretrained: str | None = None
    base_transformer: str | None = None
    tiny_root: str | None = None
    seed: int = 0  # tiny only: the init seed of the random weights

    def __post_init__(self) -> None:
        if self.preset == "flux-dev" and not self.pretrained:
            raise ConfigError("preset flux-dev needs a local diffusers FLUX.1-dev directory (--pretrained)")

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "tiny_root"}


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: float = 16.0  # PhotoDoodle: lora_alpha = rank
    targets: tuple[str, ...] = PHOTODOODLE_TARGETS
    init: str = "gaussian"


@dataclass(frozen=True)
class ConditionConfig:
    """How the condition tokens are placed (C4). clone: the target's ids (PhotoDoodle); kontext:
    index channel 1 (FLUX Kontext); offset: (row, col) shifted, OminiControl's position_delta."""

    position_mode: PositionMode = "clone"
    offset: tuple[int, int] | None = (
        None  # for 'offset'; None = (0, -packed width), OminiControl's subject delta
    )


@dataclass(frozen=True)
class ModelConfig:
    source: ModelSource = field(default_factory=ModelSource)
    lora: LoraSettings = field(default_factory=LoraSettings)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    bf16: bool | None = None  # None: bf16 base on CUDA, fp32 on CPU
    gradient_checkpointing: bool = False  # the reference trains without it


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    grad_clip: float = 1.0  # 0 disables
    warmup_steps: int = 0  # the reference's "constant" schedule ignores its 500 warm-up steps


@dataclass(frozen=True)
class DataConfig:
    height: int = 768
    width: int = 512
    batch_size: int = 1  # per worker
    max_sequence_length: int = 512
    guidance: float = 1.0  # the guidance embedding's value while training (inference uses 3.5)
    cache: Literal["auto", "on", "off"] = "auto"  # auto: cache latents + text for sets <= cache_max_pairs
    cache_max_pairs: int = 2000
    shuffle_buffer: int = 64


@dataclass(frozen=True)
class RunConfig:
    stage: Stage = "editlora"
    store: str = ""
    dataset: str = ""
    version: int = 0  # 0 = latest
    artist: str | None = None  # editlora: whose pairs (rows of other artists are skipped) and LoRA
    steps: int = 100
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 1
    seed: int = 0
    run_name: str | None = None
    workers: int = 1
    use_gpu: bool = False
    resume: bool = False
    fail_at_step: int | None = None  # fault injection for recovery tests: one worker raises once


@dataclass(frozen=True)
class TrainConfig(SectionedConfig):
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def for_stage(cls, stage: Stage, preset: Preset = "tiny", **run) -> TrainConfig:
        """The defaults of a stage at a preset's resolution; `run` sets RunConfig fields."""
        rank = STAGE_RANK[stage]
        return cls(
            model=ModelConfig(
                source=ModelSource(preset=preset, pretrained=run.pop("pretrained", None)),
                lora=LoraSettings(rank=rank, alpha=float(rank)),
            ),
            data=DataConfig(**PRESET_DATA[preset]),
            run=RunConfig(stage=stage, **run),
        )

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        m = dict(d.get("model", {}))
        lora = dict(m.get("lora", {}))
        lora["targets"] = tuple(lora.get("targets", PHOTODOODLE_TARGETS))
        cond = dict(m.get("condition", {}))
        cond["offset"] = tuple(cond["offset"]) if cond.get("offset") is not None else None
        m.update(
            source=ModelSource(**m.get("source", {})),
            lora=LoraSettings(**lora),
            condition=ConditionConfig(**cond),
        )
        o = dict(d.get("optim", {}))
        if "betas" in o:
            o["betas"] = tuple(o["betas"])
        return cls(
            model=ModelConfig(**m),
            optim=OptimConfig(**o),
            data=DataConfig(**d.get("data", {})),
            run=RunConfig(**d.get("run", {})),
        )

    def config_hash(self) -> str:
        """Hash of what changes the learned weights (not steps, workers or logging), so a resumed
        run may train longer or on another cluster size."""
        data = {
            k: v
            for k, v in asdict(self.data).items()
            if k not in ("cache", "cache_max_pairs", "shuffle_buffer")
        }
        ident = {
            "stage": self.run.stage,
            "dataset": self.run.dataset,
            "version": self.run.version,
            "artist": self.run.artist,
            "seed": self.run.seed,
            "model": self.model.source.identity(),
            "lora": asdict(self.model.lora),
            "condition": asdict(self.model.condition),
            "optim": asdict(self.optim),
            "data": data,
        }
        return short_hash(ident)

    @property
    def family(self) -> str:
        return self.run.stage  # runs/omnieditor/<run>, runs/editlora/<run>

    def run_id(self) -> str:
        if self.run.run_name:
            return self.run.run_name
        who = f"{self.run.artist}-" if self.run.artist else ""
        return f"{who}{self.run.dataset}-v{self.run.version}-{self.config_hash()}"
