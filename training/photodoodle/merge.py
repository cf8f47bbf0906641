"""The step between the stages: fuse the OmniEditor LoRA into the base transformer and store the
result as the EditLoRA base (PhotoDoodle's merge_pretrain.py: load_lora_weights, fuse_lora, unload).
"""

from __future__ import annotations

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.artifacts import save_merged_base
from doodleflow.training.photodoodle.config import ModelSource
from doodleflow.training.photodoodle.model import load_transformer, quiet_hf, resolve_source_dir
from doodleflow.training.runs.localize import local_file


def base_identity(source: ModelSource) -> dict:
    """What names the base weights a merged transformer was made from (not where they sit)."""
    return source.base_identity()


def fuse_lora_file(transformer, lora_uri: str):
    """Fuse a diffusers-format LoRA file into `transformer` in place, through diffusers' loader.
    A quantized transformer is refused: PEFT would fuse into dequantized weights and quantize the sum
    again (peft/tuners/lora/torchao.py `merge`), rounding the LoRA's delta away where it is smaller
    than the int8 step; the merged base is always made from the full-precision weights."""
    from diffusers import FluxPipeline
    from doodleflow.training.photodoodle.quantize import is_quantized

    if is_quantized(transformer):
        raise ConfigError(
            "a LoRA is merged into the full-precision base, not a quantized one (load it without --quantize-base)"
        )

    parts = dict(
        scheduler=None, vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None
    )
    pipe = FluxPipeline(transformer=transformer, **parts)
    pipe.load_lora_weights(local_file(lora_uri), adapter_name="omnieditor")
    pipe.fuse_lora(adapter_names=["omnieditor"])
    pipe.unload_lora_weights()  # the fused weights stay; the LoRA modules go
    return transformer


def merge_omnieditor(
    store: str, run_id: str, source: ModelSource, lora_uri: str, dtype: torch.dtype | None = None
) -> dict:
    """Base transformer + OmniEditor LoRA -> models/photodoodle/merged-base/<run_id>/ (diffusers layout).
    The base is loaded here in full precision whatever the run trained on (an OmniEditor trained with
    `--quantize-base` learned its LoRA against the quantized weights; the LoRA itself is full precision
    and is fused into the original weights, so the EditLoRA base keeps every bit of FLUX)."""
    from diffusers import FluxTransformer2DModel

    quiet_hf()
    if source.base_transformer:
        transformer = load_transformer(source.base_transformer, dtype)
    else:
        transformer = FluxTransformer2DModel.from_pretrained(
            resolve_source_dir(source), subfolder="transformer", torch_dtype=dtype
        )
    fuse_lora_file(transformer, lora_uri)
    card = {
        "base": base_identity(source),
        "base_transformer": source.base_transformer,
        "lora": lora_uri,
        "omnieditor_run": run_id,
    }
    return save_merged_base(store, run_id, transformer, card)
