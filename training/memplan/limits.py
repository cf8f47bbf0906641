"""A GPU's memory, and whether a plan fits in it.

`--gpu-memory 24GB` names the card as it is sold (24, 48, 80 GB cards hold 24, 48, 80 GiB of which
the driver shows a little less, e.g. 79.1 GiB on an H100 80GB). Without it, a GPU run reads its
workers' GPUs: this machine's CUDA devices for a local cluster, else the Ray cluster's accelerator
type. A plan fits when its peak is at most 90% of the card: the CUDA context (~0.5 GiB outside
`max_memory_allocated`), cuBLAS / NCCL workspaces and the caching allocator's fragmentation take the
rest (the issue's targets, 70 of 80 and 22 of 24 GB, leave the same room).
"""

from __future__ import annotations

import re

from doodleflow.infra.errors import ConfigError

USABLE = 0.9
# GiB per GPU by Ray's `accelerator_type:<name>` resource (ray.util.accelerators names).
ACCELERATOR_GIB = {
    "H200": 141, "H100": 80, "A100-80G": 80, "A100-40G": 40, "A100": 40, "L40S": 48, "L40": 48,
    "A6000": 48, "A10G": 24, "L4": 24, "RTX4090": 24, "A10": 24, "T4": 16, "V100": 16,
}  # fmt: skip


def parse_gib(text: str | float | None, flag: str = "--gpu-memory") -> float | None:
    """'24GB', '24GiB', '24G' or 24 -> 24.0 (GiB); None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|g)?\s*", str(text).lower())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"{flag} {text!r}: expected a GPU memory size such as 24GB, 48GB or 80GB")
    return float(m.group(1))


def usable(limit_gib: float) -> float:
    return USABLE * limit_gib


def from_resources(resources: dict) -> float | None:
    """The smallest GPU memory among a Ray cluster's accelerator types (None: none named)."""
    found = [gib for name, gib in ACCELERATOR_GIB.items() if f"accelerator_type:{name}" in resources]
    return min(found) if found else None


def local_gpus() -> float | None:
    """The smallest of this machine's CUDA devices, GiB (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return (
        min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
        / 2**30
    )
