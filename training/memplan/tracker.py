"""Live storages counted at the dispatcher: every tensor an op returns is charged once per storage,
and credited back when that storage is freed (a weakref finalizer fires exactly then). Works the same
on fake tensors (a plan: nothing is allocated, `nbytes` is what would be) and on real ones (the CPU
check, which compares the count with the process's peak resident memory).

Each storage belongs to a part: what exists before the step is registered (frozen and trainable
weights, optimizer state, the batch); what the step allocates is activations, except gradients, which
move to their part when autograd accumulates them into a parameter's `.grad`. A part may be charged at
a scale: a saver that stores the same tensor in fewer bytes (an int8 base, 8-bit optimizer moments) is
planned by charging what it would keep (training/memplan/plan.py says which).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

PARTS = ("frozen", "trainable", "gradients", "optimizer", "batch", "activations")


@dataclass
class Peak:
    total: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    phase: str = ""


class StorageTracker(TorchDispatchMode):
    """Enter it (inside a FakeTensorMode for a plan) around the work to count. `fake` answers
    `.item()` of a fake tensor with 1 (a loss or a norm read for logging; no branch of the step
    depends on it) and drops the fake mode's view memo after each op (its weakrefs would stop
    nn.Module.to from swapping fake parameters)."""

    def __init__(self, fake_mode=None) -> None:
        super().__init__()
        self.fake_mode = fake_mode
        self.live: dict[int, tuple[str, int]] = {}  # id(storage) -> (part, charged bytes)
        self.totals = dict.fromkeys(PARTS, 0)
        self.current = 0
        self.peak = Peak()
        self.phase = "setup"
        self.largest = (0, "")  # (bytes, "op in phase") of the largest storage allocated
        self.allocations = 0
        self.frees = 0
        self.workspace = None  # (func, args) -> bytes a kernel holds while it runs (training/memplan/gpu.py)

    # -- charging --------------------------------------------------------------------------------
    def _charge(self, st, part: str, scale: float = 1.0) -> None:
        key = id(st)
        if key in self.live:
            return
        n = int(st.nbytes() * scale)
        self.live[key] = (part, n)
        self.totals[part] += n
        self.current += n
        self.allocations += 1
        weakref.finalize(st, self._free, key)
        if self.current > self.peak.total:
            self.peak = Peak(self.current, dict(self.totals), self.phase)

    def _free(self, key: int) -> None:
        part, n = self.live.pop(key)  # one finalizer per storage: `assign` re-charges in place
        self.totals[part] -= n
        self.current -= n
        self.frees += 1

    def register(self, tensors, part: str, scale: float = 1.0) -> None:
        """Charge tensors that exist before the step (weights, optimizer state, the batch) to `part`,
        at `scale` times their bytes (a saver's smaller storage of the same values)."""
        for t in tree_leaves(tensors):
            if isinstance(t, torch.Tensor):
                self._charge(t.untyped_storage(), part, scale)

    def charged(self, t: torch.Tensor) -> tuple[str, int] | None:
        """(part, bytes) of the storage under `t`, None when it is not counted."""
        return self.live.get(id(t.untyped_storage()))

    def move(self, t: torch.Tensor, part: str, scale: float | None = None) -> None:
        """Re-charge the storage of `t` to `part` (a gradient once it is a parameter's `.grad`; weights
        built under the tracker), at `scale` times its bytes when given."""
        st = t.untyped_storage()
        key = id(st)
        if key not in self.live:
            return
        old, n = self.live[key]
        new = n if scale is None else int(st.nbytes() * scale)
        self.totals[old] -= n
        self.totals[part] += new
        self.current += new - n
        self.live[key] = (part, new)

    def assign(self, tensors, part: str, scale: float | None = None) -> None:
        """`move` for every tensor in a nested structure; uncounted ones are charged."""
        for t in tree_leaves(tensors):
            if isinstance(t, torch.Tensor):
                if self.charged(t) is None:
                    self._charge(t.untyped_storage(), part, 1.0 if scale is None else scale)
                else:
                    self.move(t, part, scale)

    def watch_gradients(self, params) -> list:
        """Hooks that charge each parameter's accumulated gradient to `gradients`; remove them after."""
        return [
            p.register_post_accumulate_grad_hook(lambda p: self.move(p.grad, "gradients")) for p in params
        ]

    def start_peak(self) -> None:
        """Forget the peak so far: the next one is the step's."""
        self.peak = Peak(self.current, dict(self.totals), self.phase)
        self.largest = (0, "")

    def _hold(self, n: int) -> None:
        """A kernel's own scratch memory, charged to activations while it runs."""
        if n:
            self.totals["activations"] += n
            self.current += n
            if self.current > self.peak.total:
                self.peak = Peak(self.current, dict(self.totals), self.phase)

    # -- the dispatcher ----------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.fake_mode is not None and func is torch.ops.aten._local_scalar_dense.default:
            return _one(args[0].dtype)
        extra = self.workspace(func, args) if self.workspace else 0
        self._hold(extra)
        out = func(*args, **kwargs)
        self._hold(-extra)
        if self.fake_mode is not None:
            self.fake_mode.fake_tensor_converter.meta_converter.tensor_memo.clear()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                if id(st) not in self.live:
                    self._charge(st, "activations")
                    if st.nbytes() > self.largest[0]:
                        self.largest = (st.nbytes(), f"{func.__name__} ({self.phase})")
        return out


def _one(dtype: torch.dtype):
    if dtype == torch.bool:
        return True
    return 1.0 if dtype.is_floating_point else 1
