"""A PhotoDoodle run stopped on request (stop.json in its run directory, as the driver writes it on a
Ctrl-C, SIGTERM or a cancel in Prefect: training/runtime/stop.py) stops at a step boundary with a
checkpoint, publishes no LoRA, and `--resume` continues it exactly; a finished run is never trained
again in place. In process, without Ray (the signal paths end to end: tests/runtime/test_stop.py)."""

from __future__ import annotations

import pytest
import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime import stop

from tests.photodoodle.helpers import make_pair_dataset
from tests.photodoodle.test_train import _cfg, _train_in_process

pytestmark = pytest.mark.slow(seconds=60)


def test_a_stopped_run_checkpoints_saves_no_lora_and_resumes_exactly(tiny_dir, tmp_path):
    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 4)
    straight, w_straight = _train_in_process(_cfg(store, tiny_dir, steps=4, checkpoint_every=4, run_name="a"))

    cfg = _cfg(store, tiny_dir, steps=4, checkpoint_every=4, run_name="b")
    run = RunDir(store, "editlora", "b")
    run.write_json(stop.FILE, {"reason": "Ctrl-C or SIGTERM"})  # asked before the first step ends
    stopped, _ = _train_in_process(cfg)
    assert (stopped["status"], stopped["steps"], stopped["stop_reason"]) == (
        "cancelled",
        1,
        "Ctrl-C or SIGTERM",
    )
    assert run.steps() == [1] and "lora" not in stopped  # checkpointed, no LoRA saved
    assert not run.fs.exists(f"{store}/loras/magic/b")

    run.fs.rm(run.path(stop.FILE))  # what the next launch does (stop.relay)
    resumed, w_resumed = _train_in_process(cfg.replace(run={"resume": True}))
    assert resumed["status"] == "completed" and resumed["resumed_from"] == 1 and resumed["steps"] == 4
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)  # the same as never stopped
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=0)

    with pytest.raises(ConfigError, match="run b finished at step 4: a finished run is never trained again"):
        _train_in_process(cfg.replace(run={"resume": True, "steps": 6}))


def test_a_stop_before_training_ends_the_flow_run_cancelled_with_the_resume_command(
    prefect_api, tmp_path, capsys
):
    """The wiring of a stop through `train artist` (CLI in process, a real Prefect flow run): the task
    and the flow run end Cancelled, the CLI prints how to continue and exits 130. Asked for before the
    job starts, so nothing trains (no Ray here)."""
    from doodleflow.flows.cli import main
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

    store = str(tmp_path / "store")
    make_pair_dataset(str(tmp_path), store, "magic", 4)
    args = "train artist --artist magic --base flux --steps 3 --run-name early --no-register --store"
    stop.request("Ctrl-C or SIGTERM")
    try:
        assert main([*args.split(), store]) == 130
    finally:
        stop.reset()
    err = capsys.readouterr().err
    assert "run early: stopped before training started (Ctrl-C or SIGTERM)" in err
    assert (
        f"continue with: doodleflow train artist --artist magic --run-name early --resume --store {store}"
        in err
    )
    assert "ERROR" not in err
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["photodoodle-train-artist"]))
        )
        mine = [r for r in runs if r.parameters["config"]["run"]["run_name"] == "early"]
        assert [r.state.type.value for r in mine] == ["CANCELLED"]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[mine[0].id])))
        assert [t.state.type.value for t in tasks if t.name.startswith("train-artist")] == ["CANCELLED"]
