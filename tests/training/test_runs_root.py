"""Where runs live is said once (infra/settings.py: RUNS, runs_root): the run folder of RunDir, of the
light RunRecord, and the OmniEditor LoRA's place in its run all derive from it, the default layout is
`<store>/runs/<family>/<run id>`, and a checkpoint's run folder (its run.json, bases.json) is found
from the checkpoint's URI (issue 20 item 4)."""

from __future__ import annotations

import os

import pytest
import torch
from doodleflow.infra import settings
from doodleflow.infra.errors import TamperedArtifact
from doodleflow.training.photodoodle.artifacts import omnieditor_lora_rel
from doodleflow.training.registry.bases import BASES, base_digests, verify_run_bases
from doodleflow.training.runs.run_record import RunRecord
from doodleflow.training.runs.rundir import RunDir, run_of_checkpoint


def _checkpoint(run: RunDir, step: int) -> str:
    return run.write_checkpoint(step, {"w": torch.ones(2)}, {"exp_avg/w": torch.zeros(2)}, {"config": {}})


def test_the_default_layout_is_unchanged(tmp_path):
    store = str(tmp_path / "store")
    run = RunDir(store + "/", "pbe", "r1")
    assert settings.runs_root(store) == f"{store}/runs"
    assert run.root == f"{store}/runs/pbe/r1" == RunRecord(store, "pbe", "r1").root
    assert run.uri(run.checkpoint_path(3)) == f"{store}/runs/pbe/r1/checkpoints/step-000003"
    assert settings.runs_root("s3://bucket/prefix/") == "s3://bucket/prefix/runs"
    assert omnieditor_lora_rel("o1") == "runs/omnieditor/o1/lora"
    assert omnieditor_lora_rel("o1", 40) == "runs/omnieditor/o1/lora-step40"


def test_a_run_follows_its_store(tmp_path):
    """The store is the setting that moves runs: a run written under one store is found under it only."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    ck = _checkpoint(RunDir(a, "editlora", "lulu-1"), 2)
    assert ck.startswith(settings.runs_root(a) + "/")
    assert RunDir(a, "editlora", "lulu-1").steps() == [2] and RunRecord(a, "editlora", "lulu-1").steps() == [
        2
    ]
    assert RunDir(b, "editlora", "lulu-1").steps() == [] and RunRecord(b, "editlora", "lulu-1").steps() == []


def test_every_run_path_derives_from_the_one_setting(tmp_path, monkeypatch):
    """Moving the runs root (one constant) moves every run path with it: nothing re-derives `runs/`."""
    monkeypatch.setattr(settings, "RUNS", "elsewhere/runs")
    store = str(tmp_path / "store")
    run = RunDir(store, "pbe", "r1")
    assert settings.runs_root(store) == f"{store}/elsewhere/runs"
    assert run.root == f"{store}/elsewhere/runs/pbe/r1" == RunRecord(store, "pbe", "r1").root
    assert omnieditor_lora_rel("o1") == "elsewhere/runs/omnieditor/o1/lora"
    _checkpoint(run, 1)
    assert os.path.isfile(f"{store}/elsewhere/runs/pbe/r1/checkpoints/step-000001/state.json")
    assert not os.path.exists(f"{store}/runs")
    assert RunRecord(store, "pbe", "r1").steps() == [1]


def test_a_checkpoints_run_folder_is_found_from_its_uri(tmp_path):
    """verify_run_bases reads the run's bases.json through run_of_checkpoint: found, verified, and a
    changed base file refused."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "vae.bin").write_bytes(b"v" * 64)
    run = RunDir(str(tmp_path / "store"), "pbe", "r1")
    ck = _checkpoint(run, 5)
    assert run_of_checkpoint(ck) == run_of_checkpoint(ck + "/") == run.uri()
    assert run_of_checkpoint("s3://b/p/runs/pbe/r1/checkpoints/step-000005") == "s3://b/p/runs/pbe/r1"
    assert verify_run_bases(ck) is False  # a run from before base digests: nothing recorded
    run.write_json(BASES, base_digests([str(base)]))
    assert verify_run_bases(ck) is True
    (base / "vae.bin").write_bytes(b"w" * 64)
    with pytest.raises(TamperedArtifact, match="vae.bin has sha256"):
        verify_run_bases(ck)
