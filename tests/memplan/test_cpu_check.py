"""The plan against real memory on the CPU (training/memplan/cpu_check.py): each case runs in a fresh
process with glibc's mmap threshold fixed, planned on fake tensors and then for real.

- The plan's growth equals the storage tracker's count of the real step, byte for byte (the same ops
  on the same shapes), and the tracker sees every storage freed when it is (live bytes back to the
  step's start, as many frees as allocations: nothing waits for a reference cycle's collection).
- At medium size (full width, one or two blocks, fp32) the plan is within 10% of the process's
  measured peak growth (VmHWM after minus VmRSS before). At tiny size the step's tensors are under the
  64 KiB mmap threshold and come from glibc's heap, so RSS cannot see them; there the byte-exact
  tracker comparison is the check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from doodleflow.training.memplan.cpu_check import MMAP_ENV

pytestmark = pytest.mark.slow(seconds=120)


def _check(case: str) -> dict:
    env = {**os.environ, **MMAP_ENV}
    p = subprocess.run(
        [sys.executable, "-m", "doodleflow.training.memplan.cpu_check", case],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["photodoodle-tiny", "pbe-tiny", "photodoodle-medium", "pbe-medium"])
def test_plan_matches_the_real_step(case):
    r = _check(case)
    assert r["planned_growth"] == r["tracked_growth"], r
    assert r["live_after"] == 0 and r["allocations"] == r["frees"] > 100, r
    if case.endswith("medium"):
        assert r["rss_growth"] > 100 * 2**20, r  # large enough for pages and small objects not to matter
        assert abs(r["planned_growth"] / r["rss_growth"] - 1) <= 0.10, r
