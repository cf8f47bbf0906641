"""A weight-only quantized frozen FLUX transformer, through diffusers' own quantization configs.

- int8: `TorchAoConfig(Int8WeightOnlyConfig())` (torchao), per-output-channel int8 weights with
  fp/bf16 scales, dequantized inside each matmul; runs on CUDA and the CPU.
- fp8: `TorchAoConfig(Float8WeightOnlyConfig())`, e4m3 weights; needs a CUDA GPU of compute
  capability 8.9 or newer (Ada, Hopper).
- nf4: `BitsAndBytesConfig(load_in_4bit, nf4, bf16 compute)` (QLoRA, Dettmers et al. 2023; diffusers'
  examples/research_projects/flux_lora_quantization); needs bitsandbytes and a CUDA GPU.

The LoRA goes on top through PEFT as usual (peft/tuners/lora/torchao.py and bnb.py wrap quantized
linears); it trains and is saved in full precision, so the file loads into an unquantized pipeline.
A platform without the kind is refused before anything loads (ConfigError, one line).
"""

from __future__ import annotations

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.savers import import_torchao


def check_platform(kind: str, device: torch.device | str) -> None:
    """Refuse a quantization this device cannot run (one line naming the flag)."""
    device = torch.device(device)
    if kind in ("none", "int8"):
        return
    if device.type != "cuda":
        raise ConfigError(f"--quantize-base {kind} needs a CUDA GPU (this run's device is {device.type}); "
                          "int8 runs everywhere")  # fmt: skip
    if kind == "fp8" and torch.cuda.get_device_capability(device) < (8, 9):
        cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
        raise ConfigError(
            f"--quantize-base fp8 needs a GPU of compute capability 8.9+ (Ada, Hopper); this one is {cap}"
        )
    if kind == "nf4":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise ConfigError("--quantize-base nf4 needs bitsandbytes installed on the GPU workers") from e


def quantization_config(kind: str, dtype: torch.dtype | None = None):
    """The diffusers quantization config of a kind ("none": None)."""
    if kind == "none":
        return None
    if kind == "nf4":
        from diffusers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype or torch.bfloat16
        )
    import_torchao(f"--quantize-base {kind}")
    from diffusers import TorchAoConfig
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

    if kind == "int8":
        return TorchAoConfig(Int8WeightOnlyConfig())
    if kind == "fp8":
        return TorchAoConfig(Float8WeightOnlyConfig())
    raise ConfigError(f"--quantize-base must be one of none, int8, fp8, nf4; got {kind!r}")


def is_quantized(module: torch.nn.Module) -> bool:
    """Whether diffusers loaded `module` with a quantization config."""
    return bool(getattr(module, "is_quantized", False))
