"""PhotoDoodle's LoRA through peft, and LoRA files in diffusers' format.

The file a run saves is what `FluxPipeline.save_lora_weights` writes: `transformer.`-prefixed
peft keys plus the LoraConfig (rank, alpha, targets) in the safetensors metadata, so
`FluxPipeline.load_lora_weights` restores it exactly, in this project or outside it.
"""

from __future__ import annotations

import os
import tempfile

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.config import WEIGHT_NAME, LoraSettings

ADAPTER = "default"


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        init_lora_weights=settings.init,
        target_modules=list(settings.targets),
    )


def add_lora(
    transformer, settings: LoraSettings, dtype: torch.dtype = torch.float32, seed: int = 0
) -> list[torch.nn.Parameter]:
    """Insert the adapter on the frozen transformer; returns its (trainable) parameters. LoRA
    weights stay fp32 by default: the bf16 base is cast under autocast, the optimizer state is not.
    The gaussian init of lora_A draws from `seed`, so equal configs start from equal weights."""
    transformer.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # the init is a function of the run's seed alone
        torch.manual_seed(seed)
        transformer.add_adapter(lora_config(settings), adapter_name=ADAPTER)
    params = [p for n, p in transformer.named_parameters() if "lora_" in n]
    for p in params:
        p.data = p.data.to(dtype)
        p.requires_grad_(True)
    if not params:
        raise ValueError(f"no module of the transformer matches the LoRA targets {settings.targets}")
    return params


def trainable_state_dict(transformer) -> dict[str, torch.Tensor]:
    """The adapter's weights under their module names (what a checkpoint stores)."""
    return {n: p.detach() for n, p in transformer.named_parameters() if p.requires_grad}


def load_trainable_state_dict(transformer, state: dict[str, torch.Tensor]) -> None:
    params = dict(transformer.named_parameters())
    missing = {n for n, p in params.items() if p.requires_grad} - set(state)
    unknown = set(state) - set(params)
    if missing or unknown:
        raise ConfigError(
            f"checkpoint does not match the LoRA: missing {sorted(missing)[:3]}, unknown {sorted(unknown)[:3]}"
        )
    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v.to(params[n].device, params[n].dtype))


def save_lora_dir(transformer, settings: LoraSettings, directory: str) -> str:
    """Write the adapter as diffusers does; returns the file's path."""
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict

    layers = {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in get_peft_model_state_dict(transformer, adapter_name=ADAPTER).items()
    }
    FluxPipeline.save_lora_weights(
        directory,
        transformer_lora_layers=layers,
        transformer_lora_adapter_metadata=lora_config(settings).to_dict(),
    )
    return os.path.join(directory, WEIGHT_NAME)


def lora_file_bytes(transformer, settings: LoraSettings) -> bytes:
    with tempfile.TemporaryDirectory() as d, open(save_lora_dir(transformer, settings, d), "rb") as f:
        return f.read()
