"""Typed configuration of a PhotoDoodle run (OmniEditor or EditLoRA), one dataclass per concern, and the
one place its defaults live: the CLI, the flows, the deployments and the pipeline all start from these.

Defaults follow PhotoDoodle's code (showlab/PhotoDoodle `train_lora_flux_pe.py` and the `train_sks*.sh`
scripts): LoRA rank 128 with alpha = rank and gaussian init on the attention and FFN projections, AdamW
lr 1e-4 / wd 1e-4 / constant schedule, grad-clip 1.0, a global batch of 1 (`train_batch_size 1`,
gradient accumulation 1, one GPU) at 768x512 (h x w), T5 length 512, guidance embedding 1.0 while
training. The OmniEditor pre-training recipe is not released; it uses the same settings (its released
`pretrain.safetensors` has the size of a rank-128 LoRA on these modules).

An EditLoRA trains on the merged OmniEditor base (`merge_pretrain.py`). Without one in the store the run
is refused unless the plain FLUX base is asked for explicitly (`base_transformer="flux"`, `--base flux`).
Every field is checked where it is set (ConfigError naming the flag), before anything starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from doodleflow.data.names import validate_name
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.config import (
    LaunchSettings,
    OptimSettings,
    PublishSettings,
    RunSettings,
    SampleSettings,
    TrainSettings,
    at_least,
    multiple_of,
    one_of,
    positive,
    short_hash,
)
from doodleflow.training.core.memory import MemoryConfig, Savers
from doodleflow.training.photodoodle.buckets import Buckets

Stage = Literal["omnieditor", "editlora"]
Preset = Literal["tiny", "flux-dev"]
PositionMode = Literal["clone", "kontext", "offset"]
STAGES = ("omnieditor", "editlora")
PRESETS = ("tiny", "flux-dev")
POSITION_MODES = ("clone", "kontext", "offset")
ASPECTS = ("bucket", "stretch")  # training/photodoodle/buckets.py
PLAIN_BASE = "flux"  # base_transformer: EditLoRA on the plain FLUX base, asked for explicitly
WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' default name for a LoRA file

# showlab/PhotoDoodle train_lora_flux_pe.py: every double block's attention and both FFNs, and
# q/k/v of the single blocks (their proj_mlp/proj_out, the norms and x_embedder are not adapted).
PHOTODOODLE_TARGETS = (
    "attn.to_k",
    "attn.to_q",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
# The savers each `--memory` preset turns on (training/core/memory.py), the fewest whose memory plan
# (training/memplan/, `doodleflow plan train artist --preset flux-dev --memory X`) fits its GPU at the
# reference's 512x768 target + condition tokens, T5 512, rank 128, micro-batch 1, a cached run:
# reference settings 50.4 GiB (<= 70 GB: the 80GB preset is the reference); checkpointing 28.9 GiB
# (<= 44 GB); checkpointing + int8 base 18.4 GiB, + 8-bit AdamW state 15.9 GiB (<= 22 GB: the 8-bit
# state keeps room for the allocator and for the dequantized weights of the block being recomputed).
MEMORY_PRESETS: dict[str, dict[str, Any]] = {
    "80GB": {},
    "48GB": {"gradient_checkpointing": True},
    "24GB": {"gradient_checkpointing": True, "optimizer": "adamw8bit", "quantize_base": "int8"},
}
REFERENCE_RANK = 128  # train_sks*.sh: --rank 128; lora_alpha = rank
# The tiny preset trains at the reference's 3:2 (h:w) aspect, 8x smaller.
PRESET_DATA = {
    "tiny": {"height": 96, "width": 64, "max_sequence_length": 32},
    "flux-dev": {"height": 768, "width": 512, "max_sequence_length": 512},
}


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from; every kind loads from local directories only.

    tiny:     small FLUX configs built in code, saved under `tiny_root`, loaded back like flux-dev;
    flux-dev: a local diffusers FLUX.1-dev directory (`pretrained`).
    `base_transformer` replaces the transformer: None = the newest merged OmniEditor base in the store
    (EditLoRA; refused when there is none), "flux" = the plain base, or a local diffusers transformer
    dir or store URI (a merged base).
    """

    preset: Preset = "tiny"
    pretrained: str | None = None
    base_transformer: str | None = None
    tiny_root: str | None = None
    seed: int = 0  # tiny only: the init seed of the random weights

    def __post_init__(self) -> None:
        one_of(self.preset, PRESETS, "--preset")
        if self.preset == "flux-dev" and not self.pretrained:
            raise ConfigError("preset flux-dev needs a local diffusers FLUX.1-dev directory (--pretrained)")
        if self.preset == "tiny" and self.pretrained:
            raise ConfigError(
                "--preset tiny builds its own weights: drop --pretrained, or use --preset flux-dev"
            )

    @property
    def is_tiny(self) -> bool:
        return self.preset == "tiny"

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "tiny_root"}

    def base_identity(self) -> dict:
        """What names the base weights a merged transformer was made from (not where they sit)."""
        return {
            "preset": self.preset,
            "pretrained": self.pretrained,
            "seed": self.seed if self.is_tiny else None,
        }


def artist_names(artists: list[str] | str) -> list[str]:
    """`--artists a,b` (or a list) as validated names, de-duplicated, in the given order."""
    names = artists.split(",") if isinstance(artists, str) else list(artists)
    out = [validate_name(a.strip(), "artist name") for a in names if a.strip()]
    if not out:
        raise ConfigError("--artists: no artist given")
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class LoraSettings:
    rank: int = REFERENCE_RANK
    alpha: float | None = None  # None = rank (PhotoDoodle: lora_alpha = rank)
    targets: tuple[str, ...] = PHOTODOODLE_TARGETS
    init: str = "gaussian"

    def __post_init__(self) -> None:
        at_least(self.rank, 1, "--rank")
        if self.alpha is None:
            object.__setattr__(self, "alpha", float(self.rank))
        positive(self.alpha, "--alpha")
        object.__setattr__(self, "targets", tuple(self.targets))


@dataclass(frozen=True)
class ConditionConfig:
    """How the condition tokens are placed (C4). clone: the target's ids (PhotoDoodle); kontext:
    index channel 1 (FLUX Kontext); offset: (row, col) shifted, OminiControl's position_delta."""

    position_mode: PositionMode = "clone"
    offset: tuple[int, int] | None = (
        None  # for 'offset'; None = (0, -packed width), OminiControl's subject delta
    )

    def __post_init__(self) -> None:
        one_of(self.position_mode, POSITION_MODES, "--position-mode")
        if self.offset is not None:
            object.__setattr__(self, "offset", tuple(self.offset))


@dataclass(frozen=True)
class ModelConfig:
    source: ModelSource = field(default_factory=ModelSource)
    lora: LoraSettings = field(default_factory=LoraSettings)
    condition: ConditionConfig = field(default_factory=ConditionConfig)
    bf16: bool | None = None  # None: bf16 base on CUDA, fp32 on CPU
    # None: the memory preset's, else off (the reference trains without it)
    gradient_checkpointing: bool | None = None


@dataclass(frozen=True)
class OptimConfig(OptimSettings):
    """No warm-up: the reference's "constant" schedule ignores its 500 warm-up steps."""

    lr: float = 1e-4
    weight_decay: float = 1e-4


@dataclass(frozen=True)
class DataConfig:
    height: int | None = None  # None: the preset's (768 for flux-dev, 96 for tiny)
    width: int | None = None  # None: the preset's (512 for flux-dev, 64 for tiny)
    # bucket: each pair at the bucket nearest its aspect, height x width pixels (training/photodoodle/
    # buckets.py); stretch: every pair resized to height x width, as PhotoDoodle's loader (C4).
    aspect: Literal["bucket", "stretch"] = "bucket"
    batch_size: int = 1  # the global batch (train_batch_size 1, one GPU, no accumulation)
    micro_batch: int | None = None  # per worker and forward pass; None = 1
    max_sequence_length: int | None = None  # None: the preset's (512 for flux-dev)
    guidance: float = 1.0  # the guidance embedding's value while training (inference uses 3.5)
    cache: Literal["auto", "on", "off"] = "auto"  # auto: cache latents + text for sets <= cache_max_pairs
    cache_max_pairs: int = 2000
    shuffle_buffer: int = 64

    def __post_init__(self) -> None:
        # 8x VAE downsampling, then 2x2 latent patches: whole patches need multiples of 16.
        for name in ("height", "width"):
            if getattr(self, name) is not None:
                multiple_of(getattr(self, name), 16, 16, 4096, f"--{name}")
        one_of(self.aspect, ASPECTS, "--aspect")
        at_least(self.batch_size, 1, "--batch-size")
        if self.micro_batch is not None:
            at_least(self.micro_batch, 1, "--micro-batch")
        if self.max_sequence_length is not None:
            at_least(self.max_sequence_length, 1, "data.max_sequence_length")
        at_least(self.guidance, 0, "data.guidance")
        one_of(self.cache, ("auto", "on", "off"), "--cache")
        at_least(self.cache_max_pairs, 0, "data.cache_max_pairs")
        at_least(self.shuffle_buffer, 0, "data.shuffle_buffer")

    def buckets(self) -> Buckets:
        """The sizes pairs train at (height and width set: TrainConfig fills the preset's)."""
        return Buckets.for_run(self.height, self.width, self.aspect)


@dataclass(frozen=True)
class RunConfig(RunSettings):
    stage: Stage = "editlora"
    artist: str | None = None  # editlora: whose pairs (rows of other artists are skipped) and LoRA
    steps: int = 500
    checkpoint_every: int | None = None  # None: half the steps, at most 500

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of(self.stage, STAGES, "stage")
        if self.artist is not None:
            validate_name(self.artist, "artist name")
        if self.checkpoint_every is None:
            object.__setattr__(self, "checkpoint_every", max(1, min(500, self.steps // 2)))


@dataclass(frozen=True)
class SampleConfig(SampleSettings):
    """Samples while training: held-out sources with their captions, plus `--sample-prompt`s. The
    reference validates every 2000 steps at 20 steps, guidance 3.5 (train_sks*.sh, inference.py); an
    EditLoRA here is 500-1500 steps, so it samples every 250 steps, ai-toolkit's example for FLUX LoRAs
    (ostris/ai-toolkit config/examples/train_lora_flux_24gb.yaml: sample_every 250, sample_steps 20)."""

    every: int = 250
    # ai-toolkit samples before training (unless skip_first_sample); off here: on a tiny 500-step run
    # a third point took the cost past 10% of the training loop (bench/sampling_cost.py)
    first: bool = False
    inputs: int = 2
    steps: int = 20
    guidance: float = 3.5


@dataclass(frozen=True)
class PublishConfig(PublishSettings):
    """After training also the OmniEditor merge. The EditLoRA is evaluated on its artist's held-out
    pairs at the reference's inference steps (the OmniEditor stage is not evaluated)."""

    eval_samples: int = 2
    eval_steps: int = 20
    merge: bool = True  # omnieditor: fuse the LoRA into the base EditLoRA runs train on


@dataclass(frozen=True)
class LaunchConfig(LaunchSettings):
    max_failures: int = 1
    cpus_per_worker: float | None = None  # None: sized to the cluster
    max_parallel: int | None = None  # artists at once (train artists); None: what Ray can place

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cpus_per_worker is not None:
            positive(self.cpus_per_worker, "--cpus-per-worker")
        if self.max_parallel is not None:
            at_least(self.max_parallel, 1, "--max-parallel")


@dataclass(frozen=True)
class TrainConfig(TrainSettings):
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    MAX_MICRO_BATCH = 1  # the reference's train_batch_size

    def __post_init__(self) -> None:
        """Settings left to the preset (resolution, text length) take the preset's values."""
        preset = PRESET_DATA[self.model.source.preset]
        unset: dict[str, Any] = {k: v for k, v in preset.items() if getattr(self.data, k) is None}
        if unset:
            object.__setattr__(self, "data", dataclasses.replace(self.data, **unset))
        self.savers()  # a quantized base without checkpointing is refused here, before anything starts

    @classmethod
    def for_stage(cls, stage: Stage, preset: Preset = "tiny", **run) -> TrainConfig:
        """The defaults of a stage at a preset's resolution; `run` sets RunConfig fields."""
        source = ModelSource(preset=preset, pretrained=run.pop("pretrained", None))
        return cls(model=ModelConfig(source=source), run=RunConfig(stage=stage, **run))

    def savers(self, cuda: bool = True) -> Savers:
        """The memory savers this run applies (training/core/memory.py); checkpointing is off
        unless set or the memory preset turns it on (the reference trains without it)."""
        return self.memory.resolve(MEMORY_PRESETS, self.model.gradient_checkpointing, False)

    def check_family(self) -> None:
        """An EditLoRA names its artist; fp8/nf4 bases need CUDA (quantize.py), refused before any
        worker starts."""
        if self.run.stage == "editlora" and self.run.artist is None:
            raise ConfigError("an EditLoRA run needs an artist (--artist)")
        kind = self.savers(self.run.use_gpu).quantize_base
        if kind in ("fp8", "nf4") and not self.run.use_gpu:
            raise ConfigError(f"--quantize-base {kind} needs CUDA GPUs (--gpus); int8 runs everywhere")

    def config_hash(self) -> str:
        """Hash of what changes the learned weights (not steps, workers, the micro-batch or logging),
        so a resumed run may train longer or on another cluster size."""
        skip = ("cache", "cache_max_pairs", "shuffle_buffer", "micro_batch")
        data = {k: v for k, v in asdict(self.data).items() if k not in skip}
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
        if self.savers().changes_weights():  # a quantized base or 8-bit state change what is learned
            ident["memory"] = self.savers().changes_weights()
        return short_hash(ident)

    @property
    def family(self) -> str:
        return self.run.stage  # runs/omnieditor/<run>, runs/editlora/<run>

    def run_id(self) -> str:
        if self.run.run_name:
            return self.run.run_name
        who = f"{self.run.artist}-" if self.run.artist else ""
        return f"{who}{self.run.dataset}-v{self.run.version}-{self.config_hash()}"
