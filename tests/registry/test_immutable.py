"""A registered version's files are immutable (issue 22 item 3): every writer that could rewrite them
refuses, a registered checkpoint is never pruned, and a second version registered from the same MLflow
run (a resumed training run's) leaves the first one's lineage readable."""

from __future__ import annotations

import os

import pytest
import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.registry import Registry
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runs.seal import is_sealed
from doodleflow.training.runs.store_dirs import upload_dir
from safetensors.torch import save_file


def _files(path, seed: int) -> str:
    os.makedirs(path, exist_ok=True)
    save_file(
        {"w": torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))}, f"{path}/w.safetensors"
    )
    return str(path)


def _tree(root: str) -> dict[str, bytes]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


def test_a_registered_folder_refuses_every_write_and_keeps_its_bytes(tmp_path):
    store, reg = str(tmp_path / "store"), Registry(home=str(tmp_path / "home"))
    lora = upload_dir(_files(tmp_path / "a", 1), store, "runs/omnieditor/r1/lora", "lora.json", {"n": 1})
    v1 = reg.register("photodoodle-omnieditor", "omnieditor-lora", lora, config={})
    before = _tree(lora)
    assert is_sealed(lora) and before

    # Publishing the run's LoRA again (what resuming a finished run did) is refused, in one line.
    with pytest.raises(ConfigError, match=r"refused, .*/runs/omnieditor/r1/lora holds the files of registered "
                       r"version\(s\) photodoodle-omnieditor:1, which are never rewritten"):  # fmt: skip
        upload_dir(_files(tmp_path / "b", 2), store, "runs/omnieditor/r1/lora", "lora.json", {"n": 2})
    # ... and so is a folder inside it.
    with pytest.raises(ConfigError, match="photodoodle-omnieditor:1"):
        upload_dir(_files(tmp_path / "c", 3), store, "runs/omnieditor/r1/lora/sub", "m.json", {})
    assert _tree(lora) == before
    reg.resolve(f"photodoodle-omnieditor:{v1.version}")  # re-hashed: unchanged

    # A sibling run is not sealed.
    upload_dir(_files(tmp_path / "d", 4), store, "runs/omnieditor/r2/lora", "lora.json", {})


def test_a_registered_checkpoint_is_never_rewritten_or_pruned(tmp_path):
    store, reg = str(tmp_path / "store"), Registry(home=str(tmp_path / "home"))
    run = RunDir(store, "pbe", "r1")
    w = {"w": torch.ones(2)}
    for step in (1, 2):
        run.write_checkpoint(step, w, {}, {"optimizer": {}})
    reg.register("pbe-x", "pbe-checkpoint", run.uri(run.checkpoint_path(2)), config={}, bases=[])
    with pytest.raises(ConfigError, match=r"writing checkpoint .*step-000002: refused.*pbe-x:1"):
        run.write_checkpoint(2, {"w": torch.zeros(2)}, {}, {"optimizer": {}})
    for step in (3, 4):
        run.write_checkpoint(step, w, {}, {"optimizer": {}})
        run.prune(keep=1)
    assert run.steps() == [2, 4]  # the registered step stays; the unregistered ones go
    assert torch.equal(run.read_checkpoint(2, optimizer=False)[0]["w"], w["w"])


def test_two_versions_from_one_mlflow_run_each_keep_their_lineage(tmp_path):
    """A resumed run registers again into its training run's MLflow run: version 1's lineage file
    used to be replaced, and `registry show NAME 1` failed its digest check."""
    reg = Registry(home=str(tmp_path / "home"))
    run_id = reg.start_run("omnieditor-lora", "train")
    a = reg.register("m", "omnieditor-lora", _files(tmp_path / "a", 1), config={"steps": 500}, run_id=run_id)
    b = reg.register("m", "omnieditor-lora", _files(tmp_path / "b", 2), config={"steps": 600}, run_id=run_id)
    assert (a.version, b.version) == (1, 2)
    assert reg.show("m", 1).lineage["config"] == {"steps": 500}
    assert reg.show("m", 2).lineage["config"] == {"steps": 600}
    assert [r.version for r in reg.versions("m")] == [1, 2]
