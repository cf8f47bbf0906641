"""`doodleflow serve` against the session's real Prefect server on loopback: the deployments register (the
refresh with its cron schedule), and an on-demand artist run triggered through the API completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from doodleflow.data.pairs import ingest_pairs_in_process
from doodleflow.data.pairs_synthetic import write_photodoodle_style

from tests.conftest import REPO
from tests.curation.trees import good_tree

pytestmark = pytest.mark.slow(seconds=50)


def test_serve_registers_deployments_and_runs_an_artist_on_demand(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    store, src = str(tmp_path / "store"), str(tmp_path / "oi")
    good_tree(src, n=2, real=False)
    style = write_photodoodle_style(str(tmp_path / "pairs"), "alice", 6, seed=3)
    ingest_pairs_in_process(style, "alice", store, artist="alice")
    # The runner looks for runs to start every 10 s by default; the test's one run need not wait that.
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "DOODLEFLOW_STORE": store,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "doodleflow.flows.cli", "serve", "--source", src, "--dataset", "nightly"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            with get_client(sync_client=True) as client:
                deadline = time.time() + 180
                names = set()
                while time.time() < deadline and not {"train-artist", "nightly-refresh"} <= names:
                    assert serve.poll() is None, serve.stderr.read()[-3000:]
                    names = {d.name for d in client.read_deployments()}
                    time.sleep(0.25)
                assert {"train-pbe", "omnieditor", "train-artist", "ingest-pairs", "nightly-refresh"} <= names
                nightly = next(d for d in client.read_deployments() if d.name == "nightly-refresh")
                assert [s.schedule.cron for s in nightly.schedules] == ["0 3 * * *"]
            run = run_deployment(
                "photodoodle-train-artist/train-artist",
                timeout=900,
                parameters={  # the flow's one config, by section (no OmniEditor merged: the plain base)
                    "config": {
                        "run": {"artist": "alice", "dataset": "alice", "steps": 2},
                        "model": {"source": {"base_transformer": "flux"}},
                        "launch": {"cpus_per_worker": 0.5},
                        "publish": {"evaluate": False},
                    }
                },
            )
        assert run.state.is_completed(), run.state
        assert os.path.isdir(os.path.join(store, "loras", "alice"))
    finally:
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait()
