"""bench/gpu_check.py end to end on the CPU (`--tiny`): the script the GPU machine runs, with the
same cases, measurements, plans and outputs (on a GPU the full-size models and the CUDA figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow(seconds=150)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_check_runs_each_case_and_writes_json_and_markdown(tmp_path):
    out, md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    cmd = [sys.executable, os.path.join(REPO, "bench", "gpu_check.py"), "--tiny", "--steps", "1",
           "--presets", "reference,24GB", "--work", str(tmp_path), "--json", str(out), "--markdown", str(md)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(out.read_text())
    cases = [(r["family"], r["preset"]) for r in result["rows"]]
    assert cases == [
        ("photodoodle", "reference"),
        ("photodoodle", "24GB"),
        ("pbe", "reference"),
        ("pbe", "24GB"),
    ]
    for r in result["rows"]:
        assert r["s_per_step"] > 0 and r["samples_per_s"] == pytest.approx(r["micro_batch"] / r["s_per_step"])
        assert r["tflops_per_sample"] > 0
        assert r["max_allocated_gib"] is None and r["mfu"] is None  # CUDA-only figures
        plan = r["plan"]
        assert r["planned_gib"] == plan["peak_gib"] > 0
        assert plan["settings"]["memory"] == ("reference" if r["preset"] == "reference" else r["preset"])
    # the 24GB preset quantizes the FLUX base: its plan charges the frozen weights at about half
    pd = {
        r["preset"]: r["plan"]["parts_bytes"]["frozen"]
        for r in result["rows"]
        if r["family"] == "photodoodle"
    }
    assert pd["24GB"] < 0.7 * pd["reference"]
    rows = [line for line in md.read_text().splitlines() if line.startswith("| CPU")]
    assert len(rows) == 4 and all("n/a" in line for line in rows)
