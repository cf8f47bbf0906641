"""The plan checked against real memory on the CPU, the one device this project can measure here.

The same step runs twice in one process: planned (fake tensors, as the CPU run takes it: fp32, the
CPU's attention kernel, the trainer's CPU optimizer path) and for real, with the storage tracker
counting live storages and the kernel's own peak resident memory (VmHWM) reset just before the
measured step. Growth is what is compared: VmHWM after the step minus VmRSS before it, against the
plan's peak minus its live bytes at the step's start (the weights, the optimizer state and the batch
are resident on both sides before the step, so neither is in the growth).

Run it in a fresh process with glibc's mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_=65536`): every
tensor of 64 KiB or more is then its own mapping, returned to the kernel when freed, so RSS follows
live tensors. With glibc's default dynamic threshold a freed large block raises the threshold, later
blocks of that size come from the heap, and a freed heap block stays resident, so RSS would keep
the high-water mark of freed memory and the growth would mean nothing.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: proc(5), /proc/pid/clear_refs, value 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@dataclass
class CpuCheck:
    planned_growth: int  # plan: peak - live at the step's start
    tracked_growth: int  # the real step, counted by the storage tracker
    rss_growth: int  # the real step: VmHWM after - VmRSS before
    live_after: int  # tracker: bytes live after the real step minus before it (0: every free seen)
    allocations: int
    frees: int
    plan_seconds: float
    real_seconds: float

    def to_dict(self) -> dict:
        return self.__dict__ | {"plan_vs_rss": self.planned_growth / max(self.rss_growth, 1)}


def check(build, torch_threads: int = 2) -> CpuCheck:
    """`build()` makes a family's Setup (training/memplan/families.py); run it planned and real."""
    import torch
    from doodleflow.training.memplan.simulate import run_step

    torch.set_num_threads(torch_threads)
    plan = run_step(build, on_gpu=False, fake=True)
    marks = {}

    def before():
        import gc

        gc.collect()
        reset_peak_rss()
        marks["rss"] = _status("VmRSS")

    real = run_step(build, on_gpu=False, fake=False, before_step=before)
    hwm = _status("VmHWM")
    return CpuCheck(
        planned_growth=plan.peak.total - plan.baseline,
        tracked_growth=real.peak.total - real.baseline,
        rss_growth=hwm - marks["rss"],
        live_after=real.end - real.baseline,
        allocations=real.storages[0],
        frees=real.storages[1],
        plan_seconds=plan.seconds,
        real_seconds=real.seconds,
    )


def main(argv: list[str]) -> int:
    """`python -m doodleflow.training.memplan.cpu_check CASE`: one case of training/memplan/cases.py,
    its result as one JSON line (the test and the docs' figures run it in a fresh process)."""
    from doodleflow.training.memplan.cases import CASES

    result = check(CASES[argv[0]])
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
