"""The optimizer a run's savers ask for (training/core/memory.py), and its 8-bit state in a
checkpoint.

"adamw8bit" is torchao's `AdamW8bit` (torchao/optim/adam.py, after Dettmers et al. 2022, "8-bit
Optimizers via Block-wise Quantization"): both moments are stored as uint8 codes with one fp32 scale
per block of 256 values and a dynamic-tree lookup table, ~2 bytes per parameter instead of AdamW's 8;
the update itself is computed in fp32. Tensors under 4096 values keep fp32 state, as bitsandbytes does.
"""

from __future__ import annotations

import functools

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.memory import Savers

# torchao's optimizer state subclasses a checkpoint may hold (no class is imported by name from a file).
STATE_CLASSES = ("OptimState8bit",)


def import_torchao(what: str):
    """torchao, quietly (its loggers are set in training/__init__.py; this catches its prints)."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import torchao
            import torchao.optim
            import torchao.quantization
    except ImportError as e:
        raise ConfigError(f"{what} needs torchao (requirements.lock pins it): {e}") from e
    return torchao


def make_optimizer(params, o, savers: Savers, cuda: bool, **torch_kwargs) -> torch.optim.Optimizer:
    """AdamW with the optim section's hyper-parameters: torch's (`torch_kwargs`: fused / foreach), or
    torchao's 8-bit one when the savers ask for it."""
    hyper = dict(lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    if savers.optimizer == "adamw":
        return torch.optim.AdamW(params, **hyper, **torch_kwargs)
    import_torchao("--optimizer adamw8bit")
    return adamw8bit_class(cuda)(params, **hyper)


@functools.cache
def adamw8bit_class(compiled: bool) -> type:
    """torchao's AdamW8bit; on CUDA its step as torchao runs it (one compiled update per parameter
    shape), on the CPU the same update run eagerly: inductor's CPU compile costs seconds per shape,
    more than a CPU run's steps take. Either class is named AdamW8bit (a checkpoint's meta)."""
    import_torchao("--optimizer adamw8bit")
    from torchao.optim import AdamW8bit

    return AdamW8bit if compiled else type("AdamW8bit", (AdamW8bit,), {"step": _eager_step})


@torch.no_grad()
def _eager_step(self, closure=None):
    """torchao.optim.adam._AdamBase.step without torch.compile (the same state and update)."""
    from torchao.optim.adam import single_param_adam

    loss = closure() if closure is not None else None
    for group in self.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = self._new_buffer(p, True)
                state["exp_avg_sq"] = self._new_buffer(p, False)
            state["step"] += 1
            beta1, beta2 = group["betas"]
            single_param_adam(
                p.detach(), p.grad, state["step"], state["exp_avg"], state["exp_avg_sq"], None,
                group["lr"], beta1, beta2, group["weight_decay"], group["eps"], True, False,
            )  # fmt: skip
    return loss


# -- checkpoint form of a quantized state tensor ----------------------------------------------------
def flatten_state(key: str, value: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict | None]:
    """A state tensor as plain tensors named `key` or `key#attr`, plus what rebuilds a subclass."""
    if type(value).__name__ not in STATE_CLASSES:
        return {key: value}, None
    attrs, (signed, dtype) = value.__tensor_flatten__()
    parts = {f"{key}#{a}": getattr(value, a) for a in attrs}
    return parts, {"class": type(value).__name__, "signed": bool(signed), "dtype": str(dtype).split(".")[-1]}


def unflatten_state(key: str, parts: dict[str, torch.Tensor], spec: dict) -> torch.Tensor:
    """Inverse of `flatten_state` for one subclass tensor (`parts`: attr -> tensor)."""
    if spec.get("class") not in STATE_CLASSES:
        raise ConfigError(f"checkpoint optimizer state {key!r}: unknown state class {spec.get('class')!r}")
    import_torchao("a checkpoint with 8-bit optimizer state")
    from torchao.optim.subclass_8bit import OptimState8bit

    return OptimState8bit.__tensor_unflatten__(parts, [spec["signed"], getattr(torch, spec["dtype"])])
