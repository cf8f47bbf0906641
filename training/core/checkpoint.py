"""Model and optimizer state as safetensors bytes (no pickle anywhere).

Optimizer layout (`optimizer.safetensors`): one tensor per (state key, parameter), named
`<key>/<parameter name>`, e.g. `exp_avg/unet.conv_in.weight`, `exp_avg_sq/...`, `step/...`.
Parameters are addressed by name, not by position, so a checkpoint survives reordering of the
parameter list. Hyper-parameters of each group go to the JSON side (`optimizer_meta`).
"""

from __future__ import annotations

import hashlib

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.savers import flatten_state, unflatten_state
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    return st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=metadata)


def tensors_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    return st_load(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _param_names(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> list[list[str]]:
    """Names of each group's parameters, in the optimizer's own order."""
    return [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer, names: dict[int, str]
) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) for an optimizer whose parameters are named by `names[id(param)]`."""
    sd = optimizer.state_dict()
    flat = [n for group in _param_names(optimizer, names) for n in group]
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):  # 8-bit state (a tensor subclass) as its plain tensors
                parts, spec = flatten_state(key, value)
                tensors.update({f"{k}/{flat[idx]}": v for k, v in parts.items()})
                if spec:
                    scalars.setdefault(flat[idx], {})[f"{key}#spec"] = spec
            else:
                scalars.setdefault(flat[idx], {})[key] = value
    groups = [  # torchao's optimizers keep lr as a tensor
        {**{k: float(v) if torch.is_tensor(v) else v for k, v in g.items() if k != "params"}, "params": pn}
        for g, pn in zip(sd["param_groups"], _param_names(optimizer, names), strict=True)
    ]
    return tensors, {"class": type(optimizer).__name__, "param_groups": groups, "scalars": scalars}


def _tensor_lr(saved: dict, current: dict) -> dict:
    """An optimizer that keeps lr as a tensor (torchao's) gets its saved lr back as one."""
    return {"lr": torch.tensor(float(saved["lr"]))} if torch.is_tensor(current.get("lr")) else {}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, names: dict[int, str], tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of `optimizer_to_tensors` (loads into `optimizer` in place)."""
    if meta["class"] != type(optimizer).__name__:
        raise ConfigError(f"checkpoint holds {meta['class']} state, optimizer is {type(optimizer).__name__}")
    ours = _param_names(optimizer, names)
    index = {n: i for i, n in enumerate(n for group in ours for n in group)}
    if [sorted(g["params"]) for g in meta["param_groups"]] != [sorted(g) for g in ours]:
        raise ConfigError("checkpoint optimizer parameters do not match the model's trainable parameters")
    state: dict[int, dict] = {}
    for key_name, value in tensors.items():
        key, _, name = key_name.partition("/")
        state.setdefault(index[name], {})[key] = value
    for name, extra in meta.get("scalars", {}).items():
        st = state.setdefault(index[name], {})
        st.update({k: v for k, v in extra.items() if not k.endswith("#spec")})
        for spec_key, spec in ((k, v) for k, v in extra.items() if k.endswith("#spec")):
            key = spec_key.removesuffix("#spec")
            parts = {k.partition("#")[2]: st.pop(k) for k in [k for k in st if k.startswith(f"{key}#")]}
            st[key] = unflatten_state(key, parts, spec)
    # load_state_dict pairs saved and current parameters by position: list them in *our* order.
    groups = [
        {**g, "params": [index[n] for n in cur], **_tensor_lr(g, cg)}
        for g, cur, cg in zip(meta["param_groups"], ours, optimizer.param_groups, strict=True)
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
