"""The architecture a plan builds: the preset's config, or a local model folder's config files (read as
JSON, no weights). Full-size configs live with the presets (training/photodoodle/presets.py
FLUX_DEV_TRANSFORMER, training/pbe/presets.py SD1_UNET, SD1_VAE, CLIP_L14); the frozen text encoders of
a streamed PhotoDoodle run are counted from the released configs below."""

from __future__ import annotations

import functools
import json
import os

from doodleflow.infra.errors import ConfigError

# google/t5-v1_1-xxl (FLUX.1-dev text_encoder_2/config.json): the encoder FLUX uses.
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, vocab_size=32128,
              feed_forward_proj="gated-gelu")  # fmt: skip
# openai/clip-vit-large-patch14 text tower (FLUX.1-dev text_encoder/config.json).
CLIP_L_TEXT = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   max_position_embeddings=77, vocab_size=49408, projection_dim=768)  # fmt: skip
# FLUX.1-dev vae/config.json
FLUX_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, use_quant_conv=False, use_post_quant_conv=False)  # fmt: skip


def read_config(folder: str, sub: str | None, fallback: dict) -> dict:
    """`folder[/sub]/config.json` when it exists (a local model folder), else `fallback`."""
    if not folder or "://" in folder:
        return dict(fallback)
    path = os.path.join(folder, sub, "config.json") if sub else os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return dict(fallback)
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a readable model config ({e})") from e
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def flux_transformer(source) -> dict:
    """The FLUX transformer config of a PhotoDoodle model source."""
    from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER, TINY_TRANSFORMER

    if source.is_tiny:
        return dict(TINY_TRANSFORMER)
    base = source.base_transformer
    if base and base != "flux" and os.path.exists(os.path.join(base, "config.json")):
        return read_config(base, None, FLUX_DEV_TRANSFORMER)
    return read_config(source.pretrained, "transformer", FLUX_DEV_TRANSFORMER)


def pbe_parts(source) -> tuple[dict, dict, dict]:
    """(UNet, VAE, CLIP vision) configs of a PbE model source; an SD1 UNet gets PbE's 9 channels."""
    from doodleflow.training.pbe.presets import CLIP_L14, SD1_UNET, SD1_VAE, TINY_CLIP, TINY_UNET, TINY_VAE

    if source.is_tiny:
        return dict(TINY_UNET), dict(TINY_VAE), dict(TINY_CLIP)
    unet = {**read_config(source.pretrained, "unet", SD1_UNET), "in_channels": 9}
    vae = read_config(source.pretrained, "vae", SD1_VAE)
    clip_dir = getattr(source, "clip", None)
    clip = (
        read_config(clip_dir, None, CLIP_L14)
        if clip_dir
        else read_config(source.pretrained, "image_encoder", CLIP_L14)
    )
    clip.setdefault("projection_dim", unet.get("cross_attention_dim", 768))
    return unet, vae, clip


@functools.lru_cache(maxsize=4)
def flux_encoder_params(tiny: bool) -> int:
    """Parameters of FLUX's frozen encoders (T5-XXL encoder, CLIP-L text, VAE), counted on the meta device."""
    import torch
    from diffusers import AutoencoderKL
    from doodleflow.training.photodoodle.presets import TINY_CLIP_TEXT, TINY_T5, TINY_VAE
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    t5, clip, vae = (TINY_T5, TINY_CLIP_TEXT, TINY_VAE) if tiny else (T5_XXL, CLIP_L_TEXT, FLUX_VAE)
    with torch.device("meta"):
        parts = (T5EncoderModel(T5Config(**t5)), CLIPTextModel(CLIPTextConfig(**clip)), AutoencoderKL(**vae))
    return sum(p.numel() for m in parts for p in m.parameters())
