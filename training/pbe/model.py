"""The Paint-by-Example model from diffusers/transformers parts, and its three ways in.

Trainable (B3): the whole UNet, PbE's mapper, final LayerNorm, projection and unconditional vector.
Frozen: the VAE and the CLIP vision tower. Parameter names follow the diffusers pipeline's
components (`unet.*`, `image_encoder.*`), so a checkpoint applies to a `PaintByExamplePipeline`.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from doodleflow.infra.errors import ConfigError, TamperedArtifact
from doodleflow.training.core.hf import default_tiny_root, quiet_hf
from doodleflow.training.pbe.config import ModelSource
from doodleflow.training.pbe.presets import save_tiny_pbe
from torch import nn


class ConditionHead(nn.Module):
    """The trainable half of diffusers' `PaintByExampleImageEncoder` (it shares the modules):
    pooled CLIP class token -> mapper -> LayerNorm -> projection, plus the learned unconditional context."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.mapper = encoder.mapper
        self.final_layer_norm = encoder.final_layer_norm
        self.proj_out = encoder.proj_out
        self.uncond_vector = encoder.uncond_vector

    def forward(self, pooled: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.proj_out(self.final_layer_norm(self.mapper(pooled[:, None])))
        if drop is None:
            return ctx
        # Mix rather than branch: both paths stay in the graph every step, so DDP needs no
        # find_unused_parameters (the unused path gets a zero gradient).
        d = drop.to(ctx.dtype).view(-1, 1, 1)
        return ctx * (1 - d) + self.uncond_vector.to(ctx.dtype).expand_as(ctx) * d


class Denoiser(nn.Module):
    """Everything that trains, as one module (the unit DDP wraps): eps = UNet(x9, t, head(pooled))."""

    def __init__(self, unet: nn.Module, encoder: nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.image_encoder = ConditionHead(encoder)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, pooled: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=self.image_encoder(pooled, drop)).sample


class PbEModel:
    """UNet + frozen VAE + PbE image encoder (frozen CLIP tower + trainable head)."""

    def __init__(self, unet, vae, image_encoder, feature_extractor=None) -> None:
        self.unet, self.vae, self.image_encoder = unet, vae, image_encoder
        self.feature_extractor = feature_extractor
        self.denoiser = Denoiser(unet, image_encoder)
        vae.requires_grad_(False).eval()
        image_encoder.model.requires_grad_(False).eval()

    # -- properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def clip_size(self) -> int:
        return int(self.image_encoder.config.image_size)

    def to(self, device: torch.device | str) -> PbEModel:
        for m in (self.unet, self.vae, self.image_encoder):
            m.to(device)
        return self

    # -- trainable weights --------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.denoiser.state_dict().items()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.denoiser.load_state_dict(state, strict=True)

    # -- frozen encoders ----------------------------------------------------------------------
    @torch.no_grad()
    def clip_pooled(self, reference: torch.Tensor) -> torch.Tensor:
        """CLIP-normalized references (B, 3, S, S) -> post-LayerNorm class token (B, hidden)."""
        return self.image_encoder.model(pixel_values=reference).pooler_output

    @torch.no_grad()
    def vae_moments(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the VAE posterior as (mean, logvar) stacked on channels (B, 2C, h, w).

        Caching the posterior rather than one sample keeps latent sampling stochastic per epoch."""
        dist = self.vae.encode(pixels).latent_dist
        return torch.cat([dist.mean, dist.logvar], dim=1)

    def sample_latents(self, moments: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        mean, logvar = moments.float().chunk(2, dim=1)
        eps = torch.randn(mean.shape, generator=generator, device=generator.device if generator else None)
        return (mean + torch.exp(0.5 * logvar) * eps.to(mean.device)) * self.scaling_factor


# -- loading ----------------------------------------------------------------------------------
def load_pbe_dir(path: str) -> PbEModel:
    """A diffusers Paint-by-Example directory (the released model, or a saved tiny preset)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder

    quiet_hf()
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
    if unet.config.in_channels != 9:
        raise ConfigError(
            f"{path}: UNet has {unet.config.in_channels} input channels, Paint-by-Example needs 9 "
            "(for a Stable Diffusion dir use kind sd1 with --clip)"
        )
    vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
    encoder = PaintByExampleImageEncoder.from_pretrained(path, subfolder="image_encoder")
    return PbEModel(unet, vae, encoder, _processor(os.path.join(path, "feature_extractor")))


def widen_conv_in(unet, in_channels: int = 9) -> None:
    """B1: append zero-initialised input channels to conv_in, so the widened UNet starts out
    computing exactly what the 4-channel one did."""
    old = unet.conv_in
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        dtype=old.weight.dtype,
        device=old.weight.device,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)


def load_sd1_clip(sd_dir: str, clip_dir: str, seed: int = 0) -> PbEModel:
    """Start of training (B1): SD v1 UNet + VAE, a CLIP ViT-L/14 vision tower, and a fresh head."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from transformers import CLIPVisionModel

    quiet_hf()
    unet = UNet2DConditionModel.from_pretrained(sd_dir, subfolder="unet")
    if unet.config.in_channels != 4:
        raise ConfigError(
            f"{sd_dir}: expected a 4-channel Stable Diffusion UNet, got {unet.config.in_channels}"
        )
    widen_conv_in(unet, 9)
    vae = AutoencoderKL.from_pretrained(sd_dir, subfolder="vae")
    vision = CLIPVisionModel.from_pretrained(clip_dir)
    cfg = vision.config
    cfg.projection_dim = unet.config.cross_attention_dim  # saved with the encoder: from_pretrained reads it
    torch.manual_seed(seed)  # the new head's init
    encoder = PaintByExampleImageEncoder(cfg, proj_size=cfg.projection_dim)
    encoder.model.load_state_dict(vision.state_dict())
    return PbEModel(unet, vae, encoder, _processor(clip_dir))


def _processor(path: str):
    from transformers import CLIPImageProcessor

    if os.path.exists(os.path.join(path, "preprocessor_config.json")):
        return CLIPImageProcessor.from_pretrained(path)
    return None


def resolve_source_dir(source: ModelSource) -> str | None:
    """The PbE directory a source loads from (writing the tiny preset first if needed)."""
    if source.kind == "tiny":
        return save_tiny_pbe(source.tiny_root or default_tiny_root(), source.seed)
    return source.pretrained if source.kind == "pbe" else None


def frozen_base_dirs(config: dict) -> list[str]:
    """The directories of the frozen weights a checkpoint of the run `config` (a TrainConfig's dict)
    loads with besides its own trained weights (training/registry/bases.py digests them)."""
    from doodleflow.training.pbe.config import TrainConfig

    src = dataclasses.replace(TrainConfig.from_dict(config).model.source, init_from=None)
    if src.kind == "sd1":
        return [src.pretrained, src.clip]
    return [resolve_source_dir(src)]


def load_model(source: ModelSource) -> PbEModel:
    if source.kind == "sd1":
        model = load_sd1_clip(source.pretrained, source.clip, source.seed)
    else:
        model = load_pbe_dir(resolve_source_dir(source))
    if source.init_from:
        model.load_trainable_state_dict(init_weights(source))
    return model


def init_weights(source: ModelSource) -> dict[str, torch.Tensor]:
    """The trained weights a fine-tune starts from, refused unless they are the pinned bytes."""
    from doodleflow.training.runs.rundir import read_checkpoint_uri

    weights, _, state = read_checkpoint_uri(source.init_from)  # each file checked against state.json
    have = state["files"]["model.safetensors"]["sha256"]
    if source.init_sha256 and have != source.init_sha256:
        raise TamperedArtifact(
            f"{source.init_from}: model.safetensors is {have[:16]}..., but {source.init_model or 'the run'} "
            f"registered {source.init_sha256[:16]}...: refusing to fine-tune from a modified checkpoint"
        )
    return weights


def init_source(checkpoint: str, ref: str | None = None, sha256: str | None = None) -> ModelSource:
    """A source that fine-tunes from a run checkpoint: that run's own base (so the frozen parts and
    the architecture match), with its trained weights on top. A chain of fine-tunes collapses: the
    checkpoint holds every trainable weight, so only the newest init matters."""
    import dataclasses

    from doodleflow.training.runs.rundir import read_checkpoint_state

    state = read_checkpoint_state(checkpoint)
    base = ModelSource(**state["config"]["model"]["source"])
    return dataclasses.replace(base, init_from=checkpoint, init_model=ref, init_sha256=sha256)
