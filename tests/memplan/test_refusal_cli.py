"""A GPU run whose memory plan exceeds its GPUs is refused by the train command before anything starts:
one line naming the plan, the limit and the fix, exit 2, no run written (training/runtime/preflight.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow(seconds=40)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "training"))


def test_train_pbe_is_refused_when_its_plan_exceeds_the_gpu(tmp_path):
    from datasets import make_version  # tests/training/datasets.py: a real dataset version

    store = str(tmp_path / "store")
    make_version(str(tmp_path), store, "kr", n_images=2)
    env = {**os.environ, "DOODLEFLOW_HOME": str(tmp_path / "home"), "DOODLEFLOW_STORE": store}
    args = ["train", "pbe", "--dataset", "kr", "--resolution", "64", "--gpu-memory", "0.001GB"]
    p = subprocess.run([sys.executable, "-m", "doodleflow.flows.cli", *args], env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 2, p.stderr[-2000:]
    error = p.stderr.strip().splitlines()[-1]
    assert (
        error.startswith("doodleflow train: error: memory plan ") and "exceeds the 0.001 GiB GPU" in error
    ), error
    assert "no memory preset fits" in error
    assert "memory plan: peak" in p.stderr  # the plan's parts were logged first
    assert not os.path.exists(os.path.join(store, "runs"))  # refused before any run or cluster
