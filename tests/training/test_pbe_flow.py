"""The train-pbe flow and CLI end to end: a driver killed with SIGKILL mid-run, resumed to the
requested step count (from the latent cache the flow builds), and the Prefect run's artifacts."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from doodleflow.flows.cli import main
from doodleflow.training.pbe.config import build_config
from doodleflow.training.pbe.job import plan_job
from doodleflow.training.runs.metrics import MetricsLog
from doodleflow.training.runs.rundir import RunDir
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from .datasets import make_version

pytestmark = pytest.mark.slow(seconds=45)
FAST = ["--resolution", "128", "--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "0"]


def _cli(*args: str, **kw):
    return subprocess.Popen([sys.executable, "-m", "doodleflow.flows.cli", *args], text=True, **kw)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then every process it had started (Ray's GCS, raylet, workers), by pid,
    so no orphaned worker keeps writing to the run while it is resumed."""
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for c in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            c.send_signal(signal.SIGKILL)
    psutil.wait_procs(children, timeout=10)  # orphans may stay zombies until init reaps them


def _kill_after_checkpoint(args: list[str], run: RunDir, step: int, log_path) -> subprocess.Popen:
    """Start the CLI and SIGKILL it (and all it started) once the run has a checkpoint at `step`."""
    with open(log_path, "w") as log:
        # Local mode (--workers 0): the driver process itself trains, so the kill takes down the
        # driver, Ray and the training loop at once (the worker-group path is tested with 2 workers
        # and an injected failure in test_pbe_ray.py).
        proc = _cli(*args, "--workers", "0", stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while (run.latest() or 0) < step:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.time() < deadline, f"no checkpoint at step {step} within 300 s"
            time.sleep(0.5)
        _kill_tree(proc)
    return proc


def test_killed_driver_resumes_to_the_requested_step_count(prefect_api, ray_cluster, tmp_path, capsys):
    store = str(tmp_path / "store")
    make_version(str(tmp_path), store, "kr", n_images=16)
    args = [
        *f"train pbe --dataset kr --store {store} --run-name kr --steps 12 --checkpoint-every 3".split(),
        *FAST,
    ]
    run = RunDir(store, "pbe", "kr")
    proc = _kill_after_checkpoint(args, run, 6, tmp_path / "killed.log")
    killed_at = run.latest()
    assert 6 <= killed_at < 12 and proc.returncode == -signal.SIGKILL

    # Without --resume the run refuses to start over on top of its checkpoints.
    with pytest.raises(ValueError, match="--resume"):
        plan_job(build_config(store=store, dataset="kr", run_name="kr"), log=lambda m: None)
    # Resume through the same CLI (in-process this time: a real Prefect flow run on the session's API),
    # switching to the latent cache, which the flow builds first: the run id does not depend on it.
    # The quality score is turned on for the evaluation after training (a one-component GMM over the
    # tiny Inception's pool3 features).
    import numpy as np
    from doodleflow.training.eval.inception import TINY_INCEPTION

    gmm, d = str(tmp_path / "gmm.npz"), TINY_INCEPTION.feature_dim
    np.savez(gmm, weights=np.ones(1), means=np.zeros((1, d)), covariances=np.eye(d)[None])
    evals = ["--eval-samples", "2", "--eval-steps", "2", "--eval-gmm", gmm]
    assert main([*args, "--workers", "0", "--resume", "--cache", "on", *evals, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 12 and result["resumed_from"] == killed_at
    assert result["checkpoint"] == run.uri(run.checkpoint_path(12)) and run.latest() == 12
    caches = run.fs.glob(f"{store}/caches/pbe-latents/kr/*/v000001/_manifest.json")  # <key>/<version>
    assert len(caches) == 1

    recs = MetricsLog.load(run)
    assert [r["step"] for r in recs] == list(range(1, 13))  # each step once: the curve continues
    assert recs[killed_at].get("resumed_from") == killed_at
    first = sum(r["loss"] for r in recs[:3]) / 3
    after = sum(r["loss"] for r in recs[killed_at : killed_at + 3]) / 3
    assert after < first  # it continued from the trained weights, not from scratch
    assert result["final_loss"] == pytest.approx(recs[-1]["loss"])

    # The Prefect run recorded the run: loss curve and summary, metrics table, flow run id in the store.
    with get_client(sync_client=True) as client:
        md = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-pbe-kr"]))
        )
        table = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-pbe-kr-metrics"]))
        )
    assert md and "data:image/png;base64," in md[0].data and result["checkpoint"] in md[0].data
    rows = json.loads(table[0].data) if isinstance(table[0].data, str) else table[0].data
    assert [r["step"] for r in rows] == list(range(1, 13))
    flow_runs = run.fs.ls(run.path("prefect"))  # the killed flow run never got to record itself
    assert len(flow_runs) == 1 and json.loads(run.fs.cat_file(flow_runs[0]))["steps"] == 12

    # ... then evaluated on the held-out split and registered with its lineage (issue 5).
    reg = result["registered"]
    assert (reg["name"], reg["version"], reg["kind"]) == ("pbe-kr", 1, "pbe-checkpoint")
    assert (
        reg["uri"] == result["checkpoint"]
        and reg["dataset"]["name"] == "kr"
        and reg["dataset"]["version"] == 1
    )
    assert set(reg["metrics"]) >= {"final_loss", "region_clip_score", "fid", "quality_score"}
    assert reg["prefect_flow_run_id"] == json.loads(run.fs.cat_file(flow_runs[0]))["flow_run_id"]
    from doodleflow.training.registry import Registry

    full = Registry(home=os.environ["DOODLEFLOW_HOME"]).resolve("pbe-kr:1")  # files verified
    assert {f["path"] for f in full.lineage["files"]} >= {"model.safetensors", "state.json"}
    # The version hangs off the training run's own MLflow run, which rank 0 logged step by step as
    # it trained: both attempts (the killed one's steps after its checkpoint were trained again).
    client = Registry(home=os.environ["DOODLEFLOW_HOME"]).client
    mlflow_run = client.get_run(reg["run_id"])
    assert mlflow_run.data.tags["doodleflow.run"] == "pbe/kr" and mlflow_run.info.status == "FINISHED"
    curve = client.get_metric_history(reg["run_id"], "loss")
    assert sorted({m.step for m in curve}) == list(range(1, 13))
    newest = {m.step: m for m in sorted(curve, key=lambda m: m.timestamp)}
    assert [newest[s].value for s in range(1, 13)] == pytest.approx([r["loss"] for r in recs])
    assert [m.step for m in client.get_metric_history(reg["run_id"], "resumed_from")] == [killed_at + 1]
    assert mlflow_run.data.params["optim.lr"] == "0.001"
    # The batch recipe as MLflow params and in the result: global 2 = 1 replica x micro-batch 2 x 1.
    params = mlflow_run.data.params
    assert [params[f"batch.{k}"] for k in ("global", "micro", "accumulation", "workers")] == [
        "2",
        "2",
        "1",
        "1",
    ]
    assert result["batch"] == {"global": 2, "micro": 2, "accumulation": 1, "workers": 1}

    # `doodleflow eval` hands one EvalSpec to the evaluate flow: the dataset and store are the ones the
    # model was trained on, the steps PbE's default unless given; the quality score is asked for here.
    main(["eval", "--model", "pbe-kr:1", "--samples", "1", "--steps", "2", "--gmm", gmm, "--json"])
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (ev["model"], ev["kind"], ev["dataset"], ev["version"], ev["n"]) == (
        "pbe-kr:1",
        "pbe-checkpoint",
        "kr",
        1,
        1,
    )
    assert {"region_clip_score", "fid", "quality_score"} <= set(ev["metrics"])
    assert ev["eval_dir"] == f"{store}/eval/registered/pbe-kr/v1/kr"

    _fine_tune_from_registered(store, result, capsys)


def _fine_tune_from_registered(store: str, trained: dict, capsys) -> None:
    """`train pbe --model NAME:V` starts from that version's verified weights and registers the new
    run with it as parent; a modified registered file is refused before any work."""
    import torch
    from doodleflow.flows.train_pbe import registered_source
    from doodleflow.training.pbe.model import load_model
    from doodleflow.training.registry.registry import TamperedArtifact
    from doodleflow.training.runs.rundir import read_checkpoint_uri

    src = registered_source("pbe-kr:1", None, None, None)
    assert (src.init_from, src.init_model, src.kind) == (trained["checkpoint"], "pbe-kr:1", "tiny")
    weights, _, _ = read_checkpoint_uri(trained["checkpoint"])
    start = load_model(src).trainable_state_dict()
    assert start.keys() == weights.keys() and all(torch.equal(start[k], weights[k]) for k in weights)
    with pytest.raises(TamperedArtifact, match="refusing to fine-tune"):
        load_model(dataclasses.replace(src, init_sha256="0" * 64))  # what a worker checks again

    args = f"train pbe --dataset kr --store {store} --model pbe-kr@production --steps 2 --workers 0".split()
    assert main([*args, *FAST, "--no-eval", "--json"]) == 2  # no such alias yet
    assert "pbe-kr@production" in capsys.readouterr().err
    assert main(["registry", "promote", "pbe-kr", "1", "--alias", "production"]) == 0
    capsys.readouterr()
    assert main([*args, *FAST, "--no-eval", "--json"]) == 0
    ft = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ft["run_id"] != trained["run_id"] and ft["steps"] == 2 and ft["resumed_from"] is None
    assert (ft["registered"]["name"], ft["registered"]["version"]) == ("pbe-kr", 2)
    assert ft["registered"]["parent"] == "pbe-kr:1"

    with open(os.path.join(trained["checkpoint"], "model.safetensors"), "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"tampered")
    with pytest.raises(TamperedArtifact, match="model.safetensors"):
        registered_source("pbe-kr:1", None, None, None)
    assert main([*args, *FAST, "--json"]) == 2
    assert "refusing to load a modified artifact" in capsys.readouterr().err
