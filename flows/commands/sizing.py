"""The flags that size a training run to its GPU, shared by the train commands and `doodleflow plan`:
`--gpu-memory 24GB` and `--micro-batch auto` (training/memplan/auto.py)."""

from __future__ import annotations

import argparse

from doodleflow.flows.commands.options import Opt
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.memory import OPTIMIZERS


def gpu_memory_arg(text: str) -> float:
    from doodleflow.training.memplan.limits import parse_gib

    try:
        return parse_gib(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from e


def micro_batch_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


GPU_MEMORY = Opt(
    "--gpu-memory",
    "launch.gpu_memory",
    "memory of each worker's GPU, e.g. 24GB, 48GB, 80GB: a run whose memory plan exceeds it is refused "
    "before Ray starts",
    gpu_memory_arg,
    derived="read from the GPUs",
)
# 8-bit optimizer state, a saver both families have (training/core/memory.py).
OPTIMIZER = Opt(
    "--optimizer",
    "memory.optimizer",
    "adamw8bit: AdamW with 8-bit block-wise state (torchao)",
    choices=OPTIMIZERS,
    derived="the --memory preset's, else adamw",
)


def pop_auto(values: dict) -> bool:
    """Take `--micro-batch auto` out of the flag values (the config holds numbers); True when given."""
    data = values.get("data", {})
    if data.get("micro_batch") == "auto":
        del data["micro_batch"]
        return True
    return False


def auto_micro_batch(cfg, log=None):
    """The config with the largest micro-batch whose plan fits the GPU; the global batch is kept."""
    from doodleflow.training.memplan.auto import largest_micro_batch
    from doodleflow.training.memplan.limits import usable
    from doodleflow.training.runtime.logs import log as train_log
    from doodleflow.training.runtime.preflight import gpu_limit

    limit = gpu_limit(cfg)
    if limit is None:
        raise ConfigError(
            "--micro-batch auto needs the GPU's memory: pass --gpu-memory (e.g. 24GB) or --gpus"
        )
    micro, plan = largest_micro_batch(cfg, limit)
    out = cfg.replace(data={"micro_batch": micro})
    (log or train_log)(
        f"--micro-batch auto: {micro} ({plan.peak_gib:.1f} GiB planned, {usable(limit):.1f} usable); "
        f"{out.batch_plan().describe()}"
    )
    return out
