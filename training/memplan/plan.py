"""A run's memory plan: its full-size step simulated (training/memplan/simulate.py) and reported by part.

`plan_for(cfg)` takes either family's TrainConfig whole: the model (preset or local folder's configs),
resolution, micro-batch and accumulation, LoRA rank and targets, condition tokens, checkpointing,
precision and memory savers all come from it. The figure is what `torch.cuda.max_memory_allocated`
would report for the step (the CUDA context and the allocator's cache come on top:
training/memplan/limits.py leaves room for them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from doodleflow.training.memplan.simulate import Measured, run_step

GIB = 2**30
PART_NAMES = {
    "frozen": "frozen weights",
    "trainable": "trainable weights",
    "gradients": "gradients",
    "optimizer": "optimizer state",
    "batch": "batch",
    "activations": "activations + transients",
    "ddp buckets": "DDP gradient buckets",
}


def size(n: int) -> str:
    """GiB with two decimals, MiB under 1 GiB (a tiny model's plan)."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 2**20:.1f} MiB"


@dataclass(frozen=True)
class MemoryPlan:
    family: str
    settings: dict  # what was planned (resolution, micro-batch, rank, savers ...)
    peak: int  # bytes
    parts: dict  # part -> bytes live at the peak (they sum to `peak`)
    phase: str  # forward, backward or optimizer step
    activations: int  # bytes the forward keeps for backward (first micro-batch)
    largest: tuple  # (bytes, op) of the step's largest single tensor
    seconds: float  # simulation time

    @property
    def peak_gib(self) -> float:
        return self.peak / GIB

    def line(self) -> str:
        """One line for a log: the peak and its parts."""
        parts = ", ".join(f"{PART_NAMES[k]} {size(v)}" for k, v in self.parts.items() if v)
        return f"memory plan: peak {size(self.peak)} in the {self.phase} ({parts})"

    def table(self) -> str:
        rows = [f"  {PART_NAMES[k]:<26}{size(v):>12}" for k, v in self.parts.items()]
        rows += [
            f"  {'peak (max allocated)':<26}{size(self.peak):>12}   in the {self.phase}",
            f"  {'kept for backward':<26}{size(self.activations):>12}   per micro-batch",
            f"  {'largest tensor':<26}{size(self.largest[0]):>12}   {self.largest[1]}",
        ]
        what = ", ".join(f"{k} {v}" for k, v in self.settings.items())
        return f"{self.family}: {what}\n" + "\n".join(rows) + f"\n  (simulated in {self.seconds:.1f} s)"

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "settings": self.settings,
            "peak_gib": round(self.peak_gib, 3),
            "parts_gib": {k: round(v / GIB, 3) for k, v in self.parts.items()},
            "parts_bytes": dict(self.parts),
            "peak_bytes": self.peak,
            "phase": self.phase,
            "activations_gib": round(self.activations / GIB, 3),
            "largest": {"gib": round(self.largest[0] / GIB, 3), "op": self.largest[1]},
            "seconds": round(self.seconds, 1),
        }

    def params(self) -> dict:
        """Flat, as MLflow params."""
        out = {"memory_plan.peak_gib": round(self.peak_gib, 2), "memory_plan.phase": self.phase}
        out.update({f"memory_plan.{k}_gib": round(v / GIB, 2) for k, v in self.parts.items()})
        return out


def _is_photodoodle(cfg) -> bool:
    return hasattr(cfg.model, "lora")


def settings_of(cfg, on_gpu: bool) -> dict:
    bp = cfg.batch_plan()
    out = {"micro_batch": bp.micro_batch, "accumulation": bp.accumulation, "workers": bp.workers}
    if _is_photodoodle(cfg):
        out.update(stage=cfg.run.stage, preset=cfg.model.source.preset,
                   size=f"{cfg.data.width}x{cfg.data.height} + condition", text_tokens=cfg.data.max_sequence_length,
                   rank=cfg.model.lora.rank, targets=len(cfg.model.lora.targets), cached=cached(cfg))  # fmt: skip
    else:
        out.update(preset=cfg.model.source.kind, resolution=cfg.data.resolution, cached=cached(cfg))
    bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else on_gpu
    out["precision"] = "bf16" if bf16 else "fp32"
    savers = cfg.savers(on_gpu)
    out.update(memory=cfg.memory.preset or "reference", checkpointing=savers.gradient_checkpointing,
               quantize_base=savers.quantize_base, optimizer=savers.optimizer, encoders=savers.encoders)  # fmt: skip
    return out


def cached(cfg) -> bool:
    """Whether the plan assumes a cached run (encoders off the device): PhotoDoodle's auto caches
    sets up to cache_max_pairs (an artist's 30-50 pairs); PbE's auto trains from the cache when built."""
    return (cfg.data.cache if _is_photodoodle(cfg) else cfg.data.latent_cache) != "off"


def plan_for(cfg, on_gpu: bool = True) -> MemoryPlan:
    """The plan of `cfg`'s step as the GPU run takes it (`on_gpu=False`: as the CPU run does)."""
    from doodleflow.training.memplan import architectures, families

    bp = cfg.batch_plan()
    if _is_photodoodle(cfg):
        arch = architectures.flux_transformer(cfg.model.source)
        build = lambda: families.build_photodoodle(cfg, arch, on_gpu, cached(cfg))  # noqa: E731
    else:
        parts = architectures.pbe_parts(cfg.model.source)
        build = lambda: families.build_pbe(cfg, parts, on_gpu, cached(cfg))  # noqa: E731
    m = run_step(lambda: families.accumulate(build(), bp.accumulation), on_gpu)
    return from_measured(
        "photodoodle" if _is_photodoodle(cfg) else "pbe", settings_of(cfg, on_gpu), m, ddp=bp.workers > 1
    )


def from_measured(family: str, settings: dict, m: Measured, ddp: bool = False) -> MemoryPlan:
    parts = dict(m.peak.parts)
    parts["frozen"] = parts.get("frozen", 0) + m.resident
    parts["activations"] = parts.get("activations", 0) + m.dequantized
    if ddp:  # DDP's gradient buckets: one more copy of the gradients, held from backward to the step
        parts["ddp buckets"] = parts.get("trainable", 0)
    return MemoryPlan(
        family, settings, sum(parts.values()), parts, m.peak.phase, m.after_forward, m.largest, m.seconds
    )


def replace(plan: MemoryPlan, **kw) -> MemoryPlan:
    return dataclasses.replace(plan, **kw)
