"""Progress where users look: rank 0's bounded-rate progress.json, followed by the driver into a Prefect
progress artifact, bounded-rate lines in the run's Prefect logs, and one terminal line per stage."""

from __future__ import annotations

import io
import json
import time

import pytest
from doodleflow.tasks.progress import StageProgress, training_progress
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime import progress


def rec(step: int) -> dict:
    return {
        "step": step,
        "loss": 1.0 / step,
        "lr": 1e-3,
        "data_time": 0.01,
        "step_time": 0.1,
        "samples_per_s": 20.0,
    }


def test_rank0_writes_progress_at_a_bounded_rate_with_an_eta(tmp_path):
    run = RunDir(str(tmp_path / "store"), "pbe", "p1")
    t0 = 1000.0
    written = [progress.record(run, rec(s), 100, now=t0 + 0.5 * s) for s in range(1, 101)]
    steps = [p["step"] for p in written if p]
    assert steps[0] == 1 and steps[-1] == 100 and len(steps) <= 100 * 0.5 / progress.INTERVAL_S + 2
    last = run.read_json(progress.FILE)
    assert last["step"] == 100 and last["eta_s"] == 0 and "step 100/100 | loss 0.0100" in last["line"]
    mid = next(p for p in written if p and p["step"] > 1)
    assert mid["eta_s"] == pytest.approx((100 - mid["step"]) * 0.5, rel=0.01)  # 0.5 s per step so far
    assert "ETA " in mid["line"]


def test_the_driver_follows_the_run_and_emits_each_new_state_once(tmp_path):
    run = RunDir(str(tmp_path / "store"), "pbe", "p2")
    seen = []
    with progress.follow(run, seen.append, every_s=0.05):
        for s in (1, 2):
            run.write_json(progress.FILE, {"step": s, "time": time.time(), "line": f"step {s}"})
            _until(lambda s=s: len(seen) >= s)  # the next write waits for the follower (a loaded CI box)
        time.sleep(0.3)  # more polls of an unchanged file: nothing more is emitted
    assert [p["step"] for p in seen] == [1, 2]


def _until(done, timeout: float = 30.0, step: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, "timed out"
        time.sleep(step)


def test_a_redirected_terminal_gets_plain_bounded_lines():
    out = io.StringIO()
    sp = StageProgress("build", 10, "k", stream=out)  # outside a Prefect run: the terminal line only
    for i in range(1, 10):
        sp.update(i, f"{i}/10 shards")
    sp.close(line="10/10 shards")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("build: 1/10 shards") and lines[-1].endswith("build: 10/10 shards")
    assert len(lines) == 2 and "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_a_stage_whose_last_update_was_printed_closes_without_repeating_it():
    out = io.StringIO()
    sp = StageProgress("build", 1, "k", stream=out)
    sp.update(1, "1/1 shards", force=True)  # the last shard's line, printed at once
    sp.close()  # the same state: not printed again
    assert out.getvalue().count("build: 1/1 shards") == 1


@pytest.mark.slow(seconds=3)
def test_a_flow_run_gets_a_progress_artifact_and_log_lines(prefect_api, tmp_path):
    from prefect import flow, task
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        LogFilter,
        LogFilterFlowRunId,
    )

    run = RunDir(str(tmp_path / "store"), "pbe", "p3")

    @task
    def job() -> None:  # stands in for a Ray job: rank 0 writes progress.json, the driver follows it
        with (
            training_progress("train demo", 4, "train", "demo"),
            progress.follow(run, progress.emitter(print), 0.05),
        ):
            for s in range(1, 5):
                run.write_json(
                    progress.FILE, {"step": s, "time": time.time(), "line": f"step {s}/4 | ETA 0m0{4 - s}s"}
                )
                time.sleep(0.3)

    @flow
    def demo() -> str:
        job()
        from prefect.runtime import flow_run

        return flow_run.id

    flow_run_id = demo()
    lines: list[str] = []
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["progress-train-demo"]))
        )

        def logged() -> bool:  # Prefect ships run logs in batches: wait for the last line to arrive
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            lines[:] = [e.message for e in logs if e.message.startswith("train demo: ")]
            return bool(lines) and lines[-1] == "train demo: step 4/4 | ETA 0m00s"

        _until(logged, step=0.25)
    assert arts and arts[0].type == "progress" and float(json.loads(json.dumps(arts[0].data))) == 100.0
    assert lines and lines[-1] == "train demo: step 4/4 | ETA 0m00s"
