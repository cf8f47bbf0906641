"""The diff with the latest version: Python sets of sample ids (before) vs Arrow (data/refresh.py).

The new side calls data/refresh.py's own `still_valid` and `part_keep`. Both sides run the same
decision on the same synthetic version (parts of 512 sample ids, 1% of the ids no longer valid, spread
so ~5% of the parts lose rows) in a process of their own (both import data/refresh.py first, outside
the timing); wall, CPU and peak RSS (ru_maxrss) per side, and the ratio. Part reads are left out: both sides read the same
column. Usage: .venv/bin/python -m bench.diff [--samples 300000 1000000 3000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PROBE = r"""
import json, resource, sys, time
import numpy as np, pyarrow as pa, pyarrow.compute as pc
from doodleflow.data.refresh import part_keep, still_valid
n, side = int(sys.argv[1]), sys.argv[2]
ids = pa.array([f"{i:016x}-{i * 7919 % n:016x}-v0" for i in range(n)])
bounds = np.arange(0, n + 512, 512).clip(max=n)
rng = np.random.default_rng(0)
gone = np.zeros(n, bool)
gone[rng.choice(n // 512, max(1, n // 512 // 20), replace=False)[:, None] * 512 + rng.integers(0, 512, (max(1, n // 512 // 20), 10))] = True
gone = gone[:n]
valid = ids.filter(pa.array(~gone))
new_jobs = pa.concat_arrays([valid, pa.array([f"new-{i}" for i in range(n // 100)])])
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
if side == "old":
    vs, done, carry = set(valid.to_pylist()), set(), 0
    for i in range(len(bounds) - 1):
        part = set(ids.slice(bounds[i], bounds[i + 1] - bounds[i]).to_pylist())
        keep = part & vs
        done |= keep
        carry += bool(keep) and keep != part  # a part that lost rows and is rewritten
    new = [s for s in new_jobs.to_pylist() if s not in done]
else:
    hit, kept = still_valid(ids, bounds, valid)
    carry = sum(part_keep(ids, bounds, hit, kept, i) is not None for i in np.flatnonzero(kept))
    seen = ids.filter(pa.array(hit))
    new = new_jobs.filter(pc.invert(pc.is_in(new_jobs, value_set=seen)))
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                  "rss_gb": r1.ru_maxrss / 1e6, "new": len(new), "partial": int(carry)}))
"""


def run(n: int, side: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(n), side], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, nargs="+", default=[300_000, 1_000_000, 3_000_000])
    args = ap.parse_args()
    print("samples | old wall s (CPU) | new wall s (CPU) | new/old wall | peak RSS old / new GB")
    for n in args.samples:
        old, new = run(n, "old"), run(n, "new")
        assert old["new"] == new["new"] and old["partial"] == new["partial"], (old, new)
        print(
            f"{n:,} | {old['wall']:.2f} ({old['cpu']:.2f}) | {new['wall']:.2f} ({new['cpu']:.2f}) | "
            f"{new['wall'] / old['wall']:.3f}x | {old['rss_gb']:.2f} / {new['rss_gb']:.2f}"
        )


if __name__ == "__main__":
    main()
