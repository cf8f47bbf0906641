"""What makes a CPU simulation spend memory as the GPU run does.

A plan runs on fake "cpu" tensors (fake "cuda" tensors fail on dtype casts in a CPU-only torch), so
three things the GPU does differently are put back explicitly:

- Autocast. CUDA autocast runs its fp32 ops (layer/group norm, softmax, exp, pow...; torch's
  `autocast_mode.cpp` fp32 list) in fp32 on bf16 inputs, so their outputs, and what backward keeps of
  them, are fp32; CPU autocast keeps them bf16. `cuda_autocast_fp32` casts their inputs as CUDA does.
- Attention. The GPU run uses the flash / memory-efficient SDPA kernel: it keeps q, k, v, the output
  and a fp32 log-sum-exp, never an L x L matrix. The CPU flash kernel saves exactly those (its
  outputs are (out, lse)), so the plan forces it (`sdpa_kernel(FLASH_ATTENTION)`: a call that could
  not use it fails instead of silently taking the math path), and adds the GPU backward's own
  workspace (FlashAttention-2: a fp32 dq accumulator and the fp32 row sums of dO * O) while it runs.
- The optimizer. The trainers pick the GPU path by device (PhotoDoodle: foreach AdamW, whose
  `_foreach_sqrt` etc. hold one fp32 copy of the trainable weights at a time; PbE: fused AdamW, no
  temporaries); `as_on_gpu` sets the same on the simulated optimizer.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map

_LOW = (torch.bfloat16, torch.float16)
# The ops of CUDA autocast's fp32 list that a diffusion step runs on large tensors (the norms; softmax
# runs inside the SDPA kernel, FLUX's RMSNorm casts to fp32 itself, mse_loss is fp32 on both).
FP32_FUNCTIONS = ("layer_norm", "group_norm")


@contextlib.contextmanager
def cuda_autocast_fp32():
    """While CPU autocast is on, run the norms in fp32 on bf16 inputs, as CUDA autocast does. The
    functions are replaced in torch.nn.functional for the block (where nn.LayerNorm / nn.GroupNorm
    look them up on each call): a TorchFunctionMode would not be active when gradient checkpointing
    recomputes a block during backward."""
    saved = {name: getattr(F, name) for name in FP32_FUNCTIONS}

    def fp32(fn):
        def call(*args, **kwargs):
            if not torch.is_autocast_enabled("cpu"):
                return fn(*args, **kwargs)
            args, kwargs = tree_map(_to_fp32, (args, kwargs))
            with torch.autocast("cpu", enabled=False):
                return fn(*args, **kwargs)

        return call

    try:
        for name, fn in saved.items():
            setattr(F, name, fp32(fn))
        yield
    finally:
        for name, fn in saved.items():
            setattr(F, name, fn)


def _to_fp32(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in _LOW else x


def flash_workspace(func, args) -> int:
    """Bytes the GPU's flash-attention backward holds while it runs: dq accumulated in fp32
    (B, H, L rounded up to 128, D) plus fp32 row sums (B, H, L rounded)."""
    if func is not torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default:
        return 0
    q = args[1]  # (B, H, L, D)
    b, h, seq, d = q.shape
    rounded = -(-seq // 128) * 128
    return 4 * b * h * rounded * (d + 1)


@contextlib.contextmanager
def like_gpu(enabled: bool = True):
    """CUDA autocast's fp32 ops and the flash kernel, for the block's duration."""
    if not enabled:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION), cuda_autocast_fp32():
        yield


def as_on_gpu(optimizer: torch.optim.Optimizer, path: str) -> None:
    """Give a simulated optimizer the implementation the trainer picks on CUDA ('foreach' or 'fused')."""
    for group in [optimizer.defaults, *optimizer.param_groups]:
        group["foreach"] = path == "foreach"
        group["fused"] = path == "fused"
