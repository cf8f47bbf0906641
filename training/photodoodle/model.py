"""The PhotoDoodle model: diffusers' FLUX parts held in a `FluxPipeline`, and how they are loaded.

Everything is frozen here; the trainable part is the LoRA that `training.photodoodle.lora` adds to
the transformer. Keeping the parts in a real `FluxPipeline` means prompts are encoded by diffusers'
own `encode_prompt`, and LoRA files go through diffusers' own `load_lora_weights`.
"""

from __future__ import annotations

import os

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.hf import default_tiny_root, quiet_hf
from doodleflow.training.photodoodle.config import ModelSource
from doodleflow.training.photodoodle.presets import save_tiny_flux


class PhotoDoodleModel:
    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.transformer = pipe.transformer
        self.vae = pipe.vae
        self.encoders_released = False  # True: the text encoders stay on the CPU (a cached run)
        for m in self._parts():
            m.requires_grad_(False)
        for m in self._parts()[1:]:
            m.eval()

    def _parts(self) -> list[torch.nn.Module]:
        """Transformer first, then the encoders present (a benchmark pipeline may carry none)."""
        parts = (self.pipe.transformer, self.pipe.vae, self.pipe.text_encoder, self.pipe.text_encoder_2)
        return [m for m in parts if m is not None]

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def guidance_embeds(self) -> bool:
        return bool(self.transformer.config.guidance_embeds)

    def _encoders(self) -> list[torch.nn.Module]:
        return [m for m in (self.pipe.text_encoder, self.pipe.text_encoder_2) if m is not None]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PhotoDoodleModel:
        """Move every part (released text encoders stay on the CPU); `dtype` casts the frozen weights
        (bf16 base on GPU), a quantized transformer keeps the dtype it was loaded in. LoRA weights added
        afterwards keep their own dtype."""
        held = {id(m) for m in self._encoders()} if self.encoders_released else set()
        for m in self._parts():
            if id(m) in held:
                continue
            if getattr(m, "is_quantized", False):  # diffusers refuses any dtype argument for these
                m.to(device)
            else:
                m.to(device=device, dtype=dtype)
        return self

    def encoders_to(self, device: torch.device | str) -> None:
        """The text encoders and the VAE to `device` (to build a cache there)."""
        for m in [*self._encoders(), self.vae]:
            m.to(device)
        self.encoders_released = False

    def release_encoders(self) -> None:
        """Send the text encoders to the CPU and keep them there (T5-XXL is ~9.5 GB): once every
        caption is cached, or for a run whose savers keep them off the device."""
        for m in self._encoders():
            m.to("cpu")
        self.encoders_released = True

    # -- frozen encoders --------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, captions: list[str], max_sequence_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(T5 sequence (B, L, D), pooled CLIP (B, P)) by diffusers' FLUX `encode_prompt`."""
        device = next(self.pipe.text_encoder_2.parameters()).device
        embeds, pooled, _ = self.pipe.encode_prompt(
            prompt=captions, prompt_2=None, device=device, max_sequence_length=max_sequence_length
        )
        return embeds, pooled

    @torch.no_grad()
    def vae_moments(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> the posterior (mean, logvar) stacked on channels, (B, 32, h, w).
        Caching the posterior rather than one sample keeps `latent_dist.sample()` per step (C4)."""
        dist = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
        return torch.cat([dist.mean, dist.logvar], dim=1)

    def sample_latents(self, moments: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A posterior sample, shifted and scaled as FLUX trains on: (z - shift) * scale."""
        mean, logvar = moments.float().chunk(2, dim=1)
        eps = torch.randn(
            mean.shape, generator=generator, device=generator.device if generator else mean.device
        )
        z = mean + torch.exp(0.5 * logvar) * eps.to(mean.device)
        return (z - self.vae.config.shift_factor) * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)


# -- loading ------------------------------------------------------------------------------------
def resolve_source_dir(source: ModelSource) -> str:
    """The FLUX directory a source loads from (writing the tiny preset first if needed)."""
    if source.preset == "tiny":
        return save_tiny_flux(source.tiny_root or default_tiny_root(), source.seed)
    path = source.pretrained or ""
    if not os.path.exists(os.path.join(path, "model_index.json")):
        raise ConfigError(
            f"--pretrained {path!r} is not a local diffusers FLUX directory (no model_index.json)"
        )
    return path


def prepare_parallel_use(source: ModelSource) -> None:
    """Call once before jobs start from several threads: diffusers' and transformers' lazy module
    attributes are not thread-safe on first access (two threads importing FluxPipeline at once
    can fail with ImportError), and the tiny preset is best written once."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer  # noqa: F401

    if source.preset == "tiny":
        resolve_source_dir(source)


def load_transformer(uri: str, dtype: torch.dtype | None = None, quantize: str = "none", subfolder=None):
    """A FLUX transformer from a local dir or store URI, weight-only quantized when asked
    (training/photodoodle/quantize.py: diffusers' TorchAoConfig / BitsAndBytesConfig)."""
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.quantize import quantization_config
    from doodleflow.training.runs.localize import local_dir

    q = quantization_config(quantize, dtype)
    return FluxTransformer2DModel.from_pretrained(
        local_dir(uri), subfolder=subfolder, torch_dtype=dtype, **({"quantization_config": q} if q else {})
    )


def load_model(
    source: ModelSource, dtype: torch.dtype | None = None, quantize: str = "none"
) -> PhotoDoodleModel:
    """FLUX parts from the source's directory; the transformer from `base_transformer` when given,
    weight-only quantized when `quantize` is not "none" (the encoders and VAE never are)."""
    from diffusers import FluxPipeline

    quiet_hf()
    if source.base_transformer:
        extra = {"transformer": load_transformer(source.base_transformer, dtype, quantize)}
    elif quantize != "none":
        extra = {"transformer": load_transformer(resolve_source_dir(source), dtype, quantize, "transformer")}
    else:
        extra = {}
    return PhotoDoodleModel(
        FluxPipeline.from_pretrained(resolve_source_dir(source), torch_dtype=dtype, **extra)
    )


def load_training_model(cfg, device: torch.device | str):
    """A run's FLUX parts in its compute dtype (bf16 on CUDA unless `model.bf16` says otherwise),
    the transformer quantized as its savers ask, after the platform check. Loaded in that dtype, not
    cast by the trainer later: a cached run encodes before the trainer exists (training/photodoodle/family.py:worker)."""
    from doodleflow.training.photodoodle.quantize import check_platform

    device = torch.device(device)
    kind = cfg.savers(device.type == "cuda").quantize_base
    check_platform(kind, device)
    bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else device.type == "cuda"
    return load_model(cfg.model.source, torch.bfloat16 if bf16 else None, kind)
