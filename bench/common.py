"""Helpers shared by the benchmarks: one-core pinning, interleaved median-of-rounds timing, machine info.

Project rule: the machine is noisy, so a figure is only reported as a ratio against a baseline measured
in the same run. Cases are interleaved round by round (rotating order), every round yields one
throughput per case, and ratios are taken within a round before the median over rounds.

Import this module before numpy/cv2/torch: the thread-count variables only work when set first.
"""

from __future__ import annotations

import os

# One core means one thread: BLAS/OpenMP pools read these at import time.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402


def pin_one_core() -> int:
    """Pin this process to one CPU and make the native libraries single-threaded; returns the CPU."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    return cpu


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def machine_line(versions: dict[str, str] | None = None) -> str:
    """One line naming the machine: nproc, CPU model, Python and the given library versions."""
    parts = [f"nproc={os.cpu_count()}", f"cpu={cpu_model()!r}", f"python={platform.python_version()}"]
    parts += [f"{k}={v}" for k, v in (versions or {}).items()]
    return "machine: " + ", ".join(parts)


@dataclass
class Rounds:
    """Per-round throughputs (items/s) of every case, in the order the rounds ran."""

    rate: dict[str, list[float]] = field(default_factory=dict)

    def median(self, case: str) -> float:
        return statistics.median(self.rate[case])

    def ratio(self, num: str, den: str) -> float:
        """Median over rounds of num/den, each ratio taken within one round (drift cancels)."""
        return statistics.median(a / b for a, b in zip(self.rate[num], self.rate[den], strict=True))


Case = Callable[[], int]


def run_rounds(
    cases: dict[str, Case | Sequence[Case]],
    rounds: int,
    warmup: bool | dict[str, Case | Sequence[Case]] = True,
    log: Callable[[str], None] | None = None,
) -> Rounds:
    """Time every case once per round; each call returns how many items it did.

    A case may be a list of pieces (e.g. the same work on consecutive slices of the inputs): the
    pieces of all cases are interleaved, piece i of every case before piece i + 1, so a burst of
    load from a neighbour hits all cases alike instead of one whole case. The case order rotates
    per piece and per round. `warmup`: True runs everything once untimed first (imports, caches,
    page faults); a dict gives cheaper stand-ins.
    """
    pieces = {n: list(c) if isinstance(c, Sequence) else [c] for n, c in cases.items()}
    if warmup:
        for c in (warmup if isinstance(warmup, dict) else cases).values():
            for fn in c if isinstance(c, Sequence) else [c]:
                fn()
    names, out = list(pieces), Rounds({n: [] for n in pieces})
    for r in range(rounds):
        spent, items = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
        for i in range(max(len(p) for p in pieces.values())):
            k = (r + i) % len(names)
            for n in names[k:] + names[:k]:
                if i < len(pieces[n]):
                    t0 = time.perf_counter()
                    items[n] += pieces[n][i]()
                    spent[n] += time.perf_counter() - t0
        for n in names:
            out.rate[n].append(items[n] / spent[n])
        if log:
            log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {out.rate[n][-1]:.1f}/s" for n in names))
    return out


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (pastes straight into docs/benchmarks.md)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
