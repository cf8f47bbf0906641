"""One optimisation step of a family's trainer under the storage tracker: the protocol a plan and the
CPU check share.

1. Build the trainer (training/memplan/families.py) and charge what exists to its part: frozen and
   trainable weights, the batch.
2. A warm-up step on a one-token batch creates AdamW's state (it is charged to `optimizer`; the
   state does not depend on the batch's shape), so the measured step is a steady-state one.
3. The measured step: `Trainer.train_step` on the run's micro-batches, its phases named (forward,
   backward, optimizer step) by wrapping the trainer's own `micro_loss` and `apply_gradients`.
"""

from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass

import torch
from doodleflow.training.memplan.families import Setup
from doodleflow.training.memplan.gpu import as_on_gpu, flash_workspace, like_gpu
from doodleflow.training.memplan.tracker import Peak, StorageTracker

MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


@dataclass
class Measured:
    peak: Peak
    baseline: int  # bytes live when the measured step starts
    after_forward: int  # bytes the first forward added (activations kept for backward)
    end: int  # bytes live after the step
    largest: tuple[int, str]
    resident: int  # frozen bytes not built (encoders on the device)
    dequantized: int  # bf16 copies of quantized weights kept for backward (added to the peak)
    seconds: float
    storages: tuple[int, int]  # (allocations, frees) counted during the measured step


def _dequantize(quantized: set[int]):
    """A quantized weight is dequantized to bf16 for each matmul that reads it (torchao's
    weight-only kernels): that copy lives while the matmul runs."""

    def extra(func, args) -> int:
        if func not in MATMULS:
            return 0
        return sum(
            2 * a.numel()
            for a in args
            if isinstance(a, torch.Tensor) and id(a.untyped_storage()) in quantized
        )

    return extra


def _workspace(on_gpu: bool, quantized: set[int]):
    deq = _dequantize(quantized) if quantized else None

    def extra(func, args) -> int:
        return (flash_workspace(func, args) if on_gpu else 0) + (deq(func, args) if deq else 0)

    return extra if (on_gpu or deq) else None


def _charge_setup(tracker: StorageTracker, setup: Setup) -> None:
    model = setup.trainer.model
    modules = (
        [model.transformer] if hasattr(model, "transformer") else [model.unet, model.vae, model.image_encoder]
    )
    for m in modules:
        for p in m.parameters():
            tracker.assign(p, "trainable" if p.requires_grad else "frozen")
        tracker.assign(list(m.buffers()), "frozen")
    tracker.assign(setup.quantized, "frozen", setup.quantize_scale)


def _phases(tracker: StorageTracker, trainer, marks: dict) -> None:
    """Name the phases by wrapping the trainer's own methods on this instance."""
    micro_loss, apply = trainer.micro_loss, trainer.apply_gradients

    def forward(batch, g):
        tracker.phase = "forward"
        loss = micro_loss(batch, g)
        marks.setdefault("after_forward", tracker.current)
        tracker.phase = "backward"
        return loss

    def step():
        tracker.phase = "optimizer step"
        return apply()

    trainer.micro_loss, trainer.apply_gradients = forward, step


def _fill(trainer) -> None:
    """Real tensors built by `to_empty` hold whatever the allocator gave: give the weights values
    (every page written, so the weights are resident before the step is measured)."""
    with torch.no_grad():
        for m in _modules(trainer.model):
            for p in m.parameters():
                p.normal_(0, 0.02)


def _modules(model) -> list:
    if hasattr(model, "transformer"):
        return [model.transformer]
    return [model.unet, model.vae, model.image_encoder]


def run_step(build, on_gpu: bool, fake: bool = True, before_step=None) -> Measured:
    """Build with `build()` (under the tracker, on fake tensors when `fake`) and measure one step.
    With `before_step` (the CPU check, which resets the peak RSS there) the step runs once untimed
    first: the CPU libraries' one-time state (oneDNN primitives and JIT code for the new shapes)
    is then no part of the measured growth."""

    t0 = time.perf_counter()
    if fake:  # the step frees all it allocates without collection (the CPU check sees each free), and
        gc.disable()  # the collector's passes over ~10^5 fake tensors and graph nodes would dominate
    try:
        return _run_step(build, on_gpu, fake, before_step, t0)
    finally:
        gc.enable()


def _run_step(build, on_gpu: bool, fake: bool, before_step, t0: float) -> Measured:
    from torch._subclasses.fake_tensor import FakeTensorMode

    fake_mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else None
    tracker = StorageTracker(fake_mode)
    with fake_mode or contextlib.nullcontext(), tracker, like_gpu(on_gpu):
        setup: Setup = build()
        trainer = setup.trainer
        if on_gpu:
            as_on_gpu(trainer.optimizer, setup.optimizer_path)
        if not fake:
            _fill(trainer)
        _charge_setup(tracker, setup)
        tracker.workspace = _workspace(on_gpu, {id(w.untyped_storage()) for w in setup.quantized})
        hooks = tracker.watch_gradients(trainer.params)
        tracker.phase = "warm-up"
        trainer.train_step(setup.warm)
        tracker.assign(
            [list(s.values()) for s in trainer.optimizer.state.values()], "optimizer", setup.optimizer_scale
        )
        tracker.assign([b(None) if callable(b) else b for b in setup.batches], "batch")
        marks: dict = {}
        _phases(tracker, trainer, marks)
        if before_step:  # a real step: once at the measured shapes first, so kernels' lazy state exists
            trainer.train_step(setup.batches if len(setup.batches) > 1 else setup.batches[0])
            before_step()
        baseline, counts = tracker.current, (tracker.allocations, tracker.frees)
        tracker.start_peak()
        trainer.train_step(setup.batches if len(setup.batches) > 1 else setup.batches[0])
        tracker.phase = "done"
        for h in hooks:
            h.remove()
    return Measured(
        peak=tracker.peak,
        baseline=baseline,
        after_forward=marks.get("after_forward", baseline) - baseline,
        end=tracker.current,
        largest=tracker.largest,
        resident=setup.resident,
        dequantized=setup.dequantized,
        seconds=time.perf_counter() - t0,
        storages=(tracker.allocations - counts[0], tracker.frees - counts[1]),
    )
