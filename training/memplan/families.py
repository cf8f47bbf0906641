"""Each family's own trainer, built on fake tensors at full size, and the batches of one step.

`build_photodoodle` / `build_pbe` run inside a FakeTensorMode: the model is constructed on the meta
device from its config (no weights are read), materialised as fake "cpu" tensors, and handed to the
family's real trainer (training/photodoodle/trainer.py, training/pbe/trainer.py), which adds the LoRA,
turns on checkpointing, builds AdamW and computes the loss as in a run. The savers that change
storage rather than code (a quantized base, 8-bit AdamW moments) are planned by the simulation's
accounting (training/memplan/simulate.py), so the trainer is given the plain settings here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from doodleflow.training.core.hf import quiet_hf

# Bytes kept per bf16 weight byte by a weight-only quantized base: int8/fp8 with one bf16 scale per
# output channel (torchao Int8WeightOnlyConfig, Float8WeightOnlyConfig); NF4 4 bits + double-quantized
# absmax, ~0.127 bit (bitsandbytes, QLoRA paper table 1).
QUANTIZED_SCALE = {"int8": 0.5, "fp8": 0.5, "nf4": (4 + 0.127) / 16}
# 8-bit AdamW moments: one byte plus a fp32 scale per block of 256 (torchao's AdamW8bit) vs 4 bytes.
ADAMW8BIT_SCALE = (1 + 4 / 256) / 4


@dataclass
class Setup:
    trainer: Any  # a family Trainer (training/core/trainer.py)
    warm: object  # a tiny micro-batch: the warm-up step that creates the optimizer state
    batches: list  # the measured step's micro-batches
    quantized: list = field(default_factory=list)  # frozen weights stored quantized
    quantize_scale: float = 1.0
    optimizer_scale: float = 1.0
    optimizer_path: str = "foreach"
    resident: int = 0  # bytes of frozen parts not built (encoders kept on the device)
    dequantized: int = 0  # bf16 copies of quantized weights autograd keeps (see `_dequantized_kept`)


def _plain(cfg, **model):
    """The config the simulated trainer gets: the plan's precision and checkpointing, no storage savers."""
    return cfg.replace(model=model, memory={"quantize_base": "none", "optimizer": "adamw"})


def _materialise(module: torch.nn.Module) -> torch.nn.Module:
    return module.to_empty(device="cpu")


def build_photodoodle(cfg, arch: dict, on_gpu: bool, cached: bool) -> Setup:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from doodleflow.training.memplan.architectures import flux_encoder_params
    from doodleflow.training.photodoodle.model import PhotoDoodleModel
    from doodleflow.training.photodoodle.presets import SCHEDULER
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

    quiet_hf()
    savers = cfg.savers(on_gpu)
    bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else on_gpu
    dtype = torch.bfloat16 if bf16 else torch.float32
    with torch.device("meta"):
        meta = FluxTransformer2DModel.from_config(arch).to(dtype)
    none = dict(vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe = FluxPipeline(
        transformer=_materialise(meta), scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), **none
    )
    sim = _plain(cfg, bf16=bf16, gradient_checkpointing=savers.gradient_checkpointing)
    trainer = PhotoDoodleTrainer(PhotoDoodleModel(pipe), sim, "cpu")
    quant, eight_bit = savers.quantize_base, savers.optimizer == "adamw8bit"
    on_device = savers.encoders == "device" or (savers.encoders == "auto" and not cached)
    tr = trainer.model.transformer
    return Setup(
        trainer=trainer,
        warm=_flux_batch(tr, 1, 16, 16, 1),
        batches=[
            _flux_batch(tr, *_micro(cfg), cfg.data.height, cfg.data.width, cfg.data.max_sequence_length)
        ],
        quantized=_base_weights(tr) if quant != "none" else [],
        quantize_scale=QUANTIZED_SCALE.get(quant, 1.0),
        optimizer_scale=ADAMW8BIT_SCALE if eight_bit else 1.0,
        optimizer_path="for-loop" if eight_bit else "foreach",
        resident=flux_encoder_params(cfg.model.source.is_tiny) * dtype.itemsize if on_device else 0,
        dequantized=_dequantized_kept(tr, savers.gradient_checkpointing) if quant != "none" else 0,
    )


def _dequantized_kept(tr, checkpointing: bool) -> int:
    """torchao's weight-only linear dequantizes inside autograd, so backward keeps a bf16 copy of each
    weight the forward used (training/photodoodle/quantize.py; measured by the savers on the CPU):
    with checkpointing one recomputed block's worth at a time, without it every weight. The plan adds
    it to the peak (at most one block's Linear weights: ~0.6 GiB for a FLUX double block)."""
    blocks = list(tr.transformer_blocks) + list(tr.single_transformer_blocks)
    per_block = [sum(2 * w.numel() for w in _base_weights(b)) for b in blocks]
    return (max(per_block) if checkpointing else sum(per_block)) if per_block else 0


def _micro(cfg) -> tuple[int]:
    return (cfg.batch_plan().micro_batch,)


def _base_weights(tr: torch.nn.Module) -> list:
    """The frozen base's Linear weights (a LoRA-wrapped layer's `base_layer`; not the adapters)."""
    return [m.weight for n, m in tr.named_modules() if isinstance(m, torch.nn.Linear) and "lora_" not in n]


def _flux_batch(tr, micro: int, height: int, width: int, text_len: int) -> Callable:
    """A cached micro-batch: the trainer draws the sigmas and noise itself (`micro_loss` gets a function)."""
    from doodleflow.training.photodoodle.forward import TextCondition
    from doodleflow.training.photodoodle.loss import EncodedBatch

    c = tr.config
    h, w = height // 8, width // 8
    enc = EncodedBatch(
        torch.zeros(micro, 16, h, w),
        torch.zeros(micro, 16, h, w),
        TextCondition(torch.zeros(micro, text_len, c.joint_attention_dim, dtype=torch.bfloat16),
                      torch.zeros(micro, c.pooled_projection_dim)),
    )  # fmt: skip
    return lambda g: enc


def build_pbe(cfg, parts: tuple[dict, dict, dict], on_gpu: bool, cached: bool) -> Setup:
    from doodleflow.training.pbe.data import PixelBatch
    from doodleflow.training.pbe.loss import EncodedBatch
    from doodleflow.training.pbe.model import PbEModel
    from doodleflow.training.pbe.presets import random_components
    from doodleflow.training.pbe.trainer import PbETrainer

    quiet_hf()
    savers = cfg.savers(on_gpu)
    eight_bit = savers.optimizer == "adamw8bit"
    unet, vae, clip = parts
    with torch.device("meta"):
        comps = random_components(unet, vae, clip)
    comps = {k: _materialise(m) for k, m in comps.items()}
    bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else on_gpu
    sim = _plain(cfg, bf16=bf16, gradient_checkpointing=savers.gradient_checkpointing)
    trainer = PbETrainer(PbEModel(**comps), sim, "cpu")
    res, micro = cfg.data.resolution, cfg.batch_plan().micro_batch
    down = 2 ** (len(vae["block_out_channels"]) - 1)
    hidden, size = clip["hidden_size"], clip["image_size"]

    def encoded(b: int, r: int):
        z = r // down
        return EncodedBatch(torch.zeros(b, 2 * vae["latent_channels"], z, z), torch.zeros(b, 2 * vae["latent_channels"], z, z),
                            torch.zeros(b, 1, z, z), torch.zeros(b, hidden))  # fmt: skip

    step = (
        encoded(micro, res)
        if cached
        else PixelBatch(
            torch.zeros(micro, 3, res, res), torch.ones(micro, 1, res, res), torch.zeros(micro, 3, size, size)
        )
    )
    return Setup(trainer=trainer, warm=encoded(1, 8 * down), batches=[step],
                 optimizer_scale=ADAMW8BIT_SCALE if eight_bit else 1.0,
                 optimizer_path="for-loop" if eight_bit else "fused")  # fmt: skip


def accumulate(setup: Setup, accumulation: int) -> Setup:
    """Two micro-batches when the run accumulates: the second runs with the first's gradients held."""
    return dataclasses.replace(setup, batches=setup.batches * min(max(accumulation, 1), 2))
