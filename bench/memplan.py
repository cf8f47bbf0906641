"""The memory planner's own cost: seconds to plan a full-width FLUX EditLoRA step (512x768 target +
condition tokens, T5 512, rank 128) at 1x, 3x and 10x the blocks (1+2, 3+6, 10+20 double+single
blocks; FLUX.1-dev has 19+38), and the ratios to 1x measured in the same run.

    .venv/bin/python bench/memplan.py                 # ~3 min on 2 cores
    .venv/bin/python bench/memplan.py --json out.json --rounds 2

A plan's cost is the fake-tensor dispatch of every op of one step (plus a one-token warm-up step):
linear in the number of ops, i.e. in the blocks, and independent of the resolution (no arithmetic
happens). The peak is printed too: it grows with the blocks (activations kept for backward).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCALES = {"1x": (1, 2), "3x": (3, 6), "10x": (10, 20)}


def plan_once(double: int, single: int):
    from doodleflow.training.memplan.families import accumulate, build_photodoodle
    from doodleflow.training.memplan.plan import from_measured
    from doodleflow.training.memplan.simulate import run_step
    from doodleflow.training.photodoodle.config import TrainConfig
    from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER

    cfg = TrainConfig.for_stage("editlora", "flux-dev", pretrained="(config)")
    arch = {**FLUX_DEV_TRANSFORMER, "num_layers": double, "num_single_layers": single}
    t0 = time.process_time()  # this process's CPU time: the machine is shared, wall time is not its own
    m = run_step(lambda: accumulate(build_photodoodle(cfg, arch, True, True), 1), on_gpu=True)
    return time.process_time() - t0, from_measured("photodoodle", {}, m)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    plan_once(1, 1)  # imports and first-call caches out of the timings
    rows: dict[str, list[float]] = {k: [] for k in SCALES}
    peaks = {}
    for _ in range(a.rounds):
        for name, (d, s) in SCALES.items():
            sec, plan = plan_once(d, s)
            rows[name].append(sec)
            peaks[name] = plan.peak_gib
    base = statistics.median(rows["1x"])
    out = {
        name: {"blocks": f"{d}+{s}", "seconds": statistics.median(rows[name]),
               "ratio": statistics.median(rows[name]) / base, "peak_gib": round(peaks[name], 2)}
        for name, (d, s) in SCALES.items()
    }  # fmt: skip
    for name, r in out.items():
        print(
            f"{name:>4} ({r['blocks']:>5} blocks): {r['seconds']:6.1f} s  {r['ratio']:5.2f}x of 1x  peak {r['peak_gib']:.1f} GiB"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
