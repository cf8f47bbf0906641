"""Model FLOPs utilisation, nanoGPT-style, with FLOPs measured rather than hand-derived.

`count_flops` runs a function once under torch's FlopCounterMode (matmuls, convolutions and
attention, 2 FLOPs per MAC; element-wise ops ignored). A full fine-tune costs about 3x the trained
model's forward (forward + two backward GEMMs); frozen encoders run forward only. Gradient
checkpointing's recomputation is hardware work, not model FLOPs, so it is not counted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Dense bf16 tensor-core peaks (NVIDIA H100/H200 and A100 datasheets, without sparsity). Matched against the device name.
PEAK_BF16_FLOPS = [
    ("H100 PCIe", 756e12),
    ("H100", 989.4e12),  # SXM5 and NVL report ~989 dense
    ("H200", 989.4e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
]


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device) -> float | None:
    """bf16 dense peak of a CUDA device, None when unknown (CPU, unlisted GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in name), None)


def mfu(flops_per_sample: float | None, samples_per_s: float, peak: float | None) -> float | None:
    if not flops_per_sample or not peak:
        return None
    return flops_per_sample * samples_per_s / peak


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30
