"""Typed configuration of a Paint-by-Example run, one dataclass per concern.

Defaults are the reference settings (seed-algorithms.md B1-B3); `TrainConfig.run_id()` hashes
everything that changes what is learned, so `--resume` finds the same run directory again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from doodleflow.infra.errors import ConfigError
from doodleflow.training.common.config import SectionedConfig, short_hash

ModelKind = Literal["tiny", "sd1", "pbe"]


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
        if self.kind == "sd1" and not (self.pretrained and self.clip):
            raise ConfigError(
                "model kind sd1 needs a Stable Diffusion v1 dir (--pretrained) and a CLIP dir (--clip)"
            )
        if self.kind == "pbe" and not self.pretrained:
            raise ConfigError("model kind pbe needs a diffusers Paint-by-Example dir (--pretrained)")

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
    cond_drop_prob: float = 0.2  # per batch, not per sample (B2)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.01  # torch AdamW default, as the reference
    warmup_steps: int = 10_000
    warmup_start_factor: float = 1e-6
    grad_clip: float = 1.0  # 0 disables; the reference ran unclipped (Lightning default)


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 4  # per worker (B3: 4 per GPU)
    resolution: int = 512  # target/mask are resized when this differs from the dataset's 512
    binarize_mask: bool = False  # the reference trains on the soft resized mask
    shuffle_buffer: int = 64
    latent_cache: Literal["auto", "build", "off"] = "auto"


@dataclass(frozen=True)
class RunConfig:
    store: str = ""
    dataset: str = ""
    version: int = 0
    steps: int = 100
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 1
    seed: int = 0
    run_name: str | None = None
    workers: int = 1
    use_gpu: bool = False
    resume: bool = False
    # Fault injection for recovery tests: the last rank raises once at each of these steps.
    fail_at_step: int | list[int] | None = None


@dataclass(frozen=True)
class TrainConfig(SectionedConfig):
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        m = dict(d.get("model", {}))
        m["source"] = ModelSource(**m.get("source", {}))
        o = dict(d.get("optim", {}))
        if "betas" in o:
            o["betas"] = tuple(o["betas"])
        return cls(
            model=ModelConfig(**m),
            diffusion=DiffusionConfig(**d.get("diffusion", {})),
            optim=OptimConfig(**o),
            data=DataConfig(**d.get("data", {})),
            run=RunConfig(**d.get("run", {})),
        )

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
            "data": {k: getattr(self.data, k) for k in ("batch_size", "resolution", "binarize_mask")},
        }
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


def build_config(overrides: dict | None = None, **run) -> TrainConfig:
    """Defaults + `overrides` by section ({"optim": {"lr": 1e-4}, ...}) + run fields as keywords."""
    base = TrainConfig().to_dict()
    for section, values in (overrides or {}).items():
        if section not in base:
            raise ConfigError(f"unknown config section {section!r} (one of {sorted(base)})")
        unknown = set(values) - set(base[section])
        if unknown:
            raise ConfigError(f"unknown {section} setting(s): {sorted(unknown)}")
        base[section].update(values)
    base["run"].update({k: v for k, v in run.items() if v is not None})
    return TrainConfig.from_dict(base)
