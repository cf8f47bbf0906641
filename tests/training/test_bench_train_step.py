"""bench/train_step.py stays runnable (tiny sizes on CPU) and reports what docs/benchmarks.md quotes."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_pbe_reports_both_cases(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "bench_train_step", os.path.join(REPO, "bench", "train_step.py")
    )
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert (
        bench.main(
            [
                "--model",
                "pbe",
                "--resolution",
                "128",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--rounds",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    assert r["size"] == "tiny" and r["device"].startswith("CPU")
    uncached, cached = r["results"]
    assert (uncached["case"], cached["case"]) == ("uncached", "latent-cache")
    assert 0 < cached["train_tflops_per_sample"] < uncached["train_tflops_per_sample"]
    assert cached["samples_per_s"] > 0 and uncached["samples_per_s"] > 0 and r["speedup"] > 0
    assert cached["mfu"] is None  # no peak FLOPs on CPU: MFU is only reported on a GPU
