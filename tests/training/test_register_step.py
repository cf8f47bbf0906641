"""`doodleflow registry register --run RUN --step N` (issue 22 item 6): a finished run's checkpoint at
a picked step is evaluated and registered like a run's own registration, its lineage naming the run and
the step; an unknown run or a step without a checkpoint is one line, exit 2, naming what exists."""

from __future__ import annotations

import pytest
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import decode_rows, pixel_batch
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.trainer import PbETrainer
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.loop import WorkerContext, train

from .datasets import make_version


@pytest.fixture(scope="module")
def trained(tiny_dir, tmp_path_factory):
    """A finished 3-step run ("picked") whose pruning kept the checkpoints of steps 2 and 3."""
    from doodleflow.data.store import DatasetStore

    tmp_path = tmp_path_factory.mktemp("register")
    home = tmp_path / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("DOODLEFLOW_HOME", str(home))
    store = str(home / "store")
    v = make_version(str(tmp_path), store, "pick", n_images=6)
    cfg = TrainConfig().replace(
        optim={"lr": 1e-3},
        data={"resolution": 64, "batch_size": 2},
        run={"store": store, "dataset": "pick", "version": v, "steps": 3, "checkpoint_every": 1,
             "run_name": "picked"},
        sample={"every": 0},
        publish={"eval_samples": 1, "eval_steps": 2},
    )  # fmt: skip
    t = DatasetStore(store, "pick").read_table(v, columns=["target_jpeg", "mask_png", "reference_jpeg"])
    batch = pixel_batch(decode_rows(t.slice(0, 2).to_pydict(), resolution=64, ref_size=224))
    run = RunDir(store, "pbe", "picked")
    run.write_json("run.json", {"run_id": "picked", "dataset": {"name": "pick", "version": v}})
    train(PbETrainer(load_pbe_dir(tiny_dir), cfg), run, lambda e: [batch], WorkerContext(log=lambda m: None))
    yield store, v, run
    mp.undo()


def test_unknown_run_and_missing_step_are_one_line_errors(trained, capsys):
    from doodleflow.flows.cli import main

    store, _, run = trained
    assert run.steps() == [2, 3]
    assert main(["registry", "register", "--run", "nope", "--step", "2", "--store", store]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"doodleflow registry: error: no training run 'nope' in {store} " + (
        "(runs/<family>/<run id>, family one of pbe, omnieditor, editlora)"
    )
    assert main(["registry", "register", "--run", "pbe/picked", "--step", "1", "--store", store]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("run pbe/picked has no checkpoint at step 1: its checkpoints are at steps 2, 3")


def test_register_a_picked_step_names_the_run_and_step_in_its_lineage(trained, prefect_api):
    from doodleflow.flows.register_run import register_run_step
    from doodleflow.training.registry import Registry

    store, v, run = trained
    reg = register_run_step(store, "picked", 2)
    assert reg["name"] == "pbe-pick" and reg["kind"] == "pbe-checkpoint"
    shown = Registry().show(reg["name"], reg["version"])
    lineage = shown.lineage
    assert lineage["uri"] == run.uri(run.checkpoint_path(2))  # .../runs/pbe/picked/checkpoints/step-000002
    assert lineage["uri"].endswith("runs/pbe/picked/checkpoints/step-000002")
    assert lineage["metrics"]["steps"] == 2 and "region_clip_score" in lineage["metrics"]  # evaluated
    assert lineage["dataset"]["name"] == "pick" and lineage["dataset"]["version"] == v
    assert lineage["config"]["run"]["run_name"] == "picked"
    assert {f["path"] for f in lineage["files"]} >= {"model.safetensors", "state.json"}
    # the loaded reference verifies the picked checkpoint's files
    assert Registry().resolve(f"pbe-pick:{reg['version']}").uri == lineage["uri"]
