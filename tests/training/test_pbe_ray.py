"""The Ray Train job on a real local cluster: two gloo workers, Ray Data streaming, FailureConfig."""

from __future__ import annotations

import json

import pytest
import torch
from doodleflow.training.core.distributed import weights_digest
from doodleflow.training.family import family
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.launch import launch
from safetensors.torch import load_file

from .datasets import make_version

pytestmark = pytest.mark.slow(seconds=55)


def test_two_gloo_workers_agree_on_weights_and_recover_from_a_worker_failure(
    ray_cluster, models_root, tiny_dir, tmp_path
):
    store = str(tmp_path / "store")
    version = make_version(str(tmp_path), store, "pair", n_images=16)
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        optim={"lr": 1e-3, "warmup_steps": 0},
        data={"resolution": 128, "batch_size": 4},  # the global batch: 2 workers x 2
        # Rank 1 is killed twice, at steps 4 and 7: each time Ray restarts the worker group, which
        # resumes from the latest checkpoint in the store (3, then 6) and trains to the end.
        run={
            "store": store,
            "dataset": "pair",
            "steps": 8,
            "checkpoint_every": 3,
            "workers": 2,
            "fail_at_step": [4, 7],
        },
    )
    result = launch(family("pbe"), cfg.replace(launch={"max_failures": 2}))

    run = RunDir(store, "pbe", cfg.replace(run={"version": version}).run_id())
    assert result["run_id"] == run.run_id and result["steps"] == 8 and result["world_size"] == 2
    assert run.read_bytes("faults/fail-at-step-000004") is not None
    assert run.read_bytes("faults/fail-at-step-000007") is not None
    assert result["resumed_from"] == 6  # the last restart continued from the step-6 checkpoint
    # Both DDP replicas hold bit-identical weights, and they are the saved ones.
    final = load_file(f"{run.checkpoint_path(8)}/model.safetensors")
    assert result["replicas_agree"] and result["replica_digests"] == [weights_digest(final)] * 2
    init = load_pbe_dir(tiny_dir).trainable_state_dict()
    assert not torch.equal(init["unet.conv_in.weight"], final["unet.conv_in.weight"])
    # The stored curve has each step once; the record after the restart says where it resumed.
    recs = [json.loads(line) for line in run.read_bytes("metrics.jsonl").decode().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert recs[3].get("resumed_from") == 3 and recs[6].get("resumed_from") == 6
    assert all("resumed_from" not in r for r in recs[:3] + recs[4:6] + recs[7:])
    assert all(r["samples_per_s"] > 0 and r["data_time"] >= 0 for r in recs)
    assert run.steps() == [6, 8] and run.read_bytes("loss.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["final_loss"] == pytest.approx(recs[-1]["loss"])
