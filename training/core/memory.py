"""The memory savers of a training run, one typed section both families share, and the presets by GPU
size that pick them (`--memory 80GB|48GB|24GB`).

Each saver goes through the ecosystem's own mechanism (docs/training-photodoodle.md, "Memory savers"):
- `quantize_base`: the frozen FLUX transformer loaded weight-only quantized by diffusers'
  quantization configs (`TorchAoConfig` int8/fp8 weight-only, `BitsAndBytesConfig` NF4), with the
  LoRA added by PEFT on top; PhotoDoodle only (PbE trains its whole UNet: nothing large is frozen);
- `optimizer`: "adamw8bit" keeps AdamW's two moments in 8 bits, block-wise (torchao's low-bit optim);
- `encoders`: where the text encoders live. "auto": a cached run puts them on the device only while
  it builds the cache, before the denoiser arrives there, and never while training; a streamed run
  keeps them there (it encodes every step). "cpu": never on the device. "device": always there;
- gradient checkpointing stays `model.gradient_checkpointing` (both families had it): a preset turns
  it on where that field is left unset (None), and so does a quantized base, which needs it: torchao's
  weight-only linear dequantizes inside autograd, so backward keeps a full-precision copy of each
  weight a block used; checkpointing keeps only the block being recomputed.

A preset fills the savers left unset (None); an explicit setting wins over the preset. The family's
`TrainConfig.savers(cuda)` resolves them (`Savers`): the trainer applies and the memory plan counts
that one object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from doodleflow.training.core.config import one_of, require

MemoryPreset = Literal["80GB", "48GB", "24GB"]
QuantizeBase = Literal["none", "int8", "fp8", "nf4"]
OptimizerKind = Literal["adamw", "adamw8bit"]
EncoderPlace = Literal["auto", "cpu", "device"]
MEMORY_PRESETS = ("80GB", "48GB", "24GB")
QUANTIZE_BASE = ("none", "int8", "fp8", "nf4")
OPTIMIZERS = ("adamw", "adamw8bit")
ENCODER_PLACES = ("auto", "cpu", "device")
# What a saver is when neither the run nor its preset sets it: the reference's settings.
SAVER_DEFAULTS = {"quantize_base": "none", "optimizer": "adamw", "encoders": "auto"}


@dataclass(frozen=True)
class MemoryConfig:
    preset: MemoryPreset | None = None  # None: the reference settings, savers one by one
    quantize_base: QuantizeBase | None = None  # None: the preset's, else "none"
    optimizer: OptimizerKind | None = None  # None: the preset's, else "adamw"
    encoders: EncoderPlace | None = None  # None: the preset's, else "auto"

    def __post_init__(self) -> None:
        if self.preset is not None:
            one_of(self.preset, MEMORY_PRESETS, "--memory")
        for name, choices, flag in (
            ("quantize_base", QUANTIZE_BASE, "--quantize-base"),
            ("optimizer", OPTIMIZERS, "--optimizer"),
            ("encoders", ENCODER_PLACES, "--encoders"),
        ):
            if getattr(self, name) is not None:
                one_of(getattr(self, name), choices, flag)

    def resolve(
        self, presets: Mapping[str, Mapping[str, Any]], checkpointing: bool | None, default_ckpt: bool
    ) -> Savers:
        """The concrete savers: an explicit setting, else the family's preset table, else the default.
        `checkpointing` is the run's `model.gradient_checkpointing` (None: the preset's, else
        `default_ckpt`). The config itself keeps what was set, so a copy with another preset
        (`cfg.replace(memory={"preset": "24GB"})`) takes that preset's savers."""
        chosen = presets.get(self.preset, {}) if self.preset else {}
        values = {
            k: getattr(self, k) if getattr(self, k) is not None else chosen.get(k, SAVER_DEFAULTS[k])
            for k in SAVER_DEFAULTS
        }
        quantized = values["quantize_base"] != "none"
        require(
            not (quantized and checkpointing is False),
            "--quantize-base",
            "needs gradient checkpointing: autograd keeps a full-precision copy of every dequantized "
            "weight for backward, which undoes the saving without it",
        )
        if checkpointing is None:
            checkpointing = chosen.get("gradient_checkpointing", default_ckpt) or quantized
        return Savers(gradient_checkpointing=bool(checkpointing), **values)


@dataclass(frozen=True)
class Savers:
    """A run's savers, resolved: what its trainer applies and its memory plan counts."""

    gradient_checkpointing: bool
    quantize_base: QuantizeBase
    optimizer: OptimizerKind
    encoders: EncoderPlace

    def changes_weights(self) -> dict:
        """The savers that change what is learned (for a run's hash; none: the old run id)."""
        return {
            k: getattr(self, k)
            for k in ("quantize_base", "optimizer")
            if getattr(self, k) != SAVER_DEFAULTS[k]
        }


def refuse_quantized_base(memory: MemoryConfig, family: str, why: str) -> None:
    """For a family with no large frozen base: one line naming the flag."""
    require(memory.quantize_base in (None, "none"), "--quantize-base", f"does not apply to {family}: {why}")
