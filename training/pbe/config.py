"""Typed configuration of a Paint-by-Example run, one dataclass per concern, and the one place its
defaults live: the CLI, the flow, the deployments and the pipeline all start from these.

Defaults are the reference settings (Fantasy-Studio/Paint-by-Example configs/v1.yaml and train.sh):
AdamW lr 1e-5 unscaled (`--scale_lr False`), a global batch of 32 (4 per GPU on 8 GPUs); the reference's
10k linear warm-up is a switch (`--warmup-steps 10000`), off by default so the default 100-step run
trains at its learning rate. `TrainConfig.run_id()` hashes everything that changes what is learned, so `--resume` finds the
same run directory again. Every field is checked where it is set (`__post_init__`: ConfigError naming
the flag), so a bad value is refused before any server, pool or cluster starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
    require,
    short_hash,
)
from doodleflow.training.core.memory import MemoryConfig, Savers, refuse_quantized_base

ModelKind = Literal["tiny", "sd1", "pbe"]
# auto: train from the cache when present; on: build it first (one vocabulary with PhotoDoodle's --cache)
LatentCache = Literal["auto", "on", "off"]
SampleBy = Literal["image", "box"]
# The savers each `--memory` preset turns on (training/core/memory.py), planned at 512 px; the
# micro-batch that fits is the planner's (`--micro-batch auto`). PbE trains its whole UNet, so there is
# no large frozen base to quantize.
MEMORY_PRESETS: dict[str, dict[str, Any]] = {
    "80GB": {"gradient_checkpointing": True},
    "48GB": {"gradient_checkpointing": True},
    "24GB": {"gradient_checkpointing": True, "optimizer": "adamw8bit"},
}


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from; every kind loads from local directories only.

    tiny: small configs built in code, saved under `tiny_root` and loaded back like `pbe`;
    sd1:  a Stable Diffusion v1 diffusers dir (`pretrained`) + a CLIP ViT-L/14 dir (`clip`);
    pbe:  a diffusers Paint-by-Example dir (`pretrained`), to fine-tune the released model.

    Any kind may also name `init_from`: a run checkpoint (a registered PbE model's files) whose
    trained weights replace the base's before step 0; the base fields are then that run's own.
    `init_sha256` pins its model.safetensors, checked again where the weights are loaded.
    """

    kind: ModelKind = "tiny"
    pretrained: str | None = None
    clip: str | None = None
    tiny_root: str | None = None
    seed: int = 0  # tiny only: the init seed of the random weights
    init_from: str | None = None
    init_model: str | None = None  # the registry reference init_from came from (lineage parent)
    init_sha256: str | None = None

    def __post_init__(self) -> None:
        one_of(self.kind, ("tiny", "sd1", "pbe"), "--preset")
        if self.kind == "sd1" and not (self.pretrained and self.clip):
            raise ConfigError(
                "model kind sd1 needs a Stable Diffusion v1 dir (--pretrained) and a CLIP dir (--clip)"
            )
        if self.kind == "pbe" and not self.pretrained:
            raise ConfigError("model kind pbe needs a diffusers Paint-by-Example dir (--pretrained)")

    @property
    def is_tiny(self) -> bool:
        return self.kind == "tiny"

    def identity(self) -> dict:
        """What names these weights (tiny_root is a location, not an identity)."""
        return {k: v for k, v in asdict(self).items() if k != "tiny_root"}


@dataclass(frozen=True)
class ModelConfig:
    source: ModelSource = field(default_factory=ModelSource)
    # None = decide by device: on for CUDA, off on CPU (fp32 there, as the reference trainer).
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None


@dataclass(frozen=True)
class DiffusionConfig:
    # LDM's "linear" schedule is linear in sqrt(beta): diffusers calls it "scaled_linear".
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    cond_drop_prob: float = 0.2  # per batch, not per sample (ddpm.py, u_cond_percent 0.2)

    def __post_init__(self) -> None:
        at_least(self.num_train_timesteps, 1, "diffusion.num_train_timesteps")
        require(0 <= self.cond_drop_prob <= 1, "diffusion.cond_drop_prob", "must lie in [0, 1]")


@dataclass(frozen=True)
class OptimConfig(OptimSettings):
    """AdamW, weight decay 0.01 (torch's default, as the reference). The reference warms up over 10,000
    steps (LambdaLinearScheduler) of a 40-epoch run; a default run here is 100 steps, so the default
    trains at --lr from step 1 (`--warmup-steps 10000` restores the reference for a run at least that
    long; a longer warm-up than the run is refused). grad_clip 1.0: the reference ran unclipped
    (Lightning default)."""

    lr: float = 1e-5
    warmup_start_factor: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.warmup_start_factor <= 1, "optim.warmup_start_factor", "must lie in [0, 1]")

    @property
    def warmup_start(self) -> float:
        return self.warmup_start_factor


@dataclass(frozen=True)
class DataConfig:
    # The global batch: all workers and accumulation steps together (train.sh: 4 per GPU x 8 GPUs).
    batch_size: int = 32
    # Per worker and forward pass; None = the largest divisor of the worker's share up to 4.
    micro_batch: int | None = None
    resolution: int = 512  # target/mask are resized when this differs from the dataset's 512
    binarize_mask: bool = False  # the reference trains on the soft resized mask
    shuffle_buffer: int = 64
    latent_cache: LatentCache = "auto"
    # image: each epoch one stored (box, variant) per training image, as PbE's loader (training/pbe/epochs.py);
    # box: every stored sample every epoch.
    sample_by: SampleBy = "image"

    def __post_init__(self) -> None:
        at_least(self.batch_size, 1, "--batch-size")
        if self.micro_batch is not None:
            at_least(self.micro_batch, 1, "--micro-batch")
        # The VAE downsamples 8x and the UNet 8x more: the latent grid needs whole cells.
        multiple_of(self.resolution, 64, 64, 2048, "--resolution")
        at_least(self.shuffle_buffer, 0, "data.shuffle_buffer")
        if self.latent_cache == "build":  # the name before --cache auto|on|off (checkpoints keep it)
            object.__setattr__(self, "latent_cache", "on")
        one_of(self.latent_cache, ("auto", "on", "off"), "--cache")
        one_of(self.sample_by, ("image", "box"), "--sample-by")


@dataclass(frozen=True)
class RunConfig(RunSettings):
    pass


@dataclass(frozen=True)
class SampleConfig(SampleSettings):
    """Samples while training. The reference logs 4 images every 500 steps (Fantasy-Studio/Paint-by-Example
    main.py:586-591, `ImageLogger` batch_frequency 500, max_images 4); ours are repainted with the
    inference settings (PLMS 50 steps, guidance 5: scripts/inference.py), not its 200 DDIM steps."""

    every: int = 500
    first: bool = False  # the reference's ImageLogger: log_first_step=False (main.py:306)
    inputs: int = 4
    steps: int = 50
    guidance: float = 5.0


@dataclass(frozen=True)
class PublishConfig(PublishSettings):
    """Evaluated at the inference settings (PLMS 50 steps) on 4 held-out samples; eval_clip scores
    the painted region."""

    eval_inception: str | None = None  # FID Inception dir (None: tiny random)
    eval_gmm: str | None = None  # quality score: .npz GMM weights (None: not scored)


@dataclass(frozen=True)
class LaunchConfig(LaunchSettings):
    pass


@dataclass(frozen=True)
class TrainConfig(TrainSettings):
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    MAX_MICRO_BATCH = 4  # the reference's batch per GPU (train.sh: batch_size 4 on each of 8 GPUs)

    def __post_init__(self) -> None:
        refuse_quantized_base(
            self.memory, "Paint by Example", "it trains its whole UNet (nothing large is frozen)"
        )

    def savers(self, cuda: bool = True) -> Savers:
        """The memory savers this run applies (training/core/memory.py); checkpointing unset and no
        preset: on for CUDA, off on CPU."""
        return self.memory.resolve(MEMORY_PRESETS, self.model.gradient_checkpointing, cuda)

    def config_hash(self) -> str:
        """Hash of what changes the learned weights; steps, workers and logging are left out so a
        resumed run may train longer or on another cluster size."""
        ident = {
            "dataset": self.run.dataset,
            "version": self.run.version,
            "seed": self.run.seed,
            "model": self.model.source.identity(),
            "diffusion": asdict(self.diffusion),
            "optim": asdict(self.optim),
            "data": {
                k: getattr(self.data, k) for k in ("batch_size", "resolution", "binarize_mask", "sample_by")
            },
        }
        if self.savers().changes_weights():  # 8-bit AdamW state changes what is learned
            ident["memory"] = self.savers().changes_weights()
        return short_hash(ident)

    def run_id(self) -> str:
        return self.run.run_name or f"{self.run.dataset}-v{self.run.version}-{self.config_hash()}"


def model_source(
    preset: str | None = None,
    pretrained: str | None = None,
    clip: str | None = None,
    tiny_root: str | None = None,
) -> ModelSource:
    """The CLI's `--preset/--pretrained/--clip` as a source: a CLIP dir means start from SD v1 (sd1),
    a lone --pretrained is a diffusers Paint-by-Example dir (pbe), nothing means the tiny preset."""
    if preset == "sd1" or clip:
        return ModelSource(kind="sd1", pretrained=pretrained, clip=clip)
    if pretrained:
        if preset == "tiny":
            raise ConfigError("--preset tiny builds its own weights: drop --pretrained, or use --preset sd1")
        return ModelSource(kind="pbe", pretrained=pretrained)
    return ModelSource(kind="tiny", tiny_root=tiny_root)


build_config = TrainConfig.build  # defaults + overrides by section + run fields as keywords
