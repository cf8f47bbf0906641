"""Samples while training reach the Prefect run's page (issue 22 item 1): rank 0's grid in the run
folder is followed by the driver inside a Prefect task and becomes a markdown artifact of that flow run,
with the grid embedded, through a real Prefect API."""

from __future__ import annotations

import torch
from doodleflow.tasks.progress import training_progress
from doodleflow.training.core.config import SampleSettings
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.previews import PreviewInputs, Previews, follow
from PIL import Image
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.runtime import flow_run


def test_each_sampling_point_becomes_an_artifact_of_the_flow_run(prefect_api, tmp_path):
    store, lines = str(tmp_path / "store"), []
    red, blue = Image.new("RGB", (24, 16), "red"), Image.new("RGB", (24, 16), "blue")

    @task
    def job() -> None:
        run = RunDir(store, "pbe", "r1")
        with training_progress("train pbe", 2, "train-pbe", "sinks"), follow(run, lines.append):
            s = SampleSettings(every=1, tile=32)
            p = Previews(
                run, s, PreviewInputs(["in"], [[red]]), lambda: [blue], [torch.nn.Linear(1, 1)], "cpu"
            )
            p.after_step(0, 2)
            p.after_step(1, 2)

    @flow
    def fl() -> str:
        job()
        return str(flow_run.id)

    run_id = fl()
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["samples-train-pbe-sinks"]))
        )
    assert arts and str(arts[0].flow_run_id) == run_id
    assert "data:image/png;base64," in arts[0].data and "columns: steps 0, 1" in arts[0].data
    # the terminal: one line for the last point, with its cost and the grid's URI
    assert lines and lines[-1].startswith("samples at step 1: 1 input(s) in ")
    assert lines[-1].endswith("runs/pbe/r1/samples/grid.png")
