"""The demo pipeline with an s3:// store (moto's S3 server on loopback): every result lands in the
bucket (datasets, checkpoints, LoRAs, Prefect results, Ray Train storage, MLflow artifacts,
evaluation outputs), and the local DOODLEFLOW_HOME holds nothing but caches and service state."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from doodleflow.data.fsutil import filesystem

pytestmark = pytest.mark.slow(seconds=110)

# What may stay on local disk, and why: caches (rebuilt when missing) and the services' own state,
# which a deployment points elsewhere (MLFLOW_TRACKING_URI, PREFECT_API_URL, a MongoDB server).
LOCAL_OK = {
    "models": "tiny preset weights, written once and reused (a cache of code-built models)",
    "demo": "the demo's generated input sample, made once (a cache of its inputs)",
    "fiftyone": "FiftyOne's MongoDB data (a MongoDB server in a deployment)",
    "cache/media": "the decoded images FiftyOne's App shows (a cache of the dataset's bytes)",
    "cache/sha256.json": "digests of local base-weight files, valid while size and mtime hold",
    "cache/store": "local copies of store files that diffusers/peft load from a directory (named by URI)",
    "logs": "the command's own log file (library noise kept off the terminal), like any CLI's log",
    "mlflow/mlflow.db": "the MLflow tracking database (MLFLOW_TRACKING_URI for a server)",
    "prefect": "Prefect's client settings and memo store (the API is the session's server)",
}


def _local_files(home: str) -> list[str]:
    out = []
    for root, _, files in os.walk(home):
        out += [os.path.relpath(os.path.join(root, f), home) for f in files]
    return sorted(out)


def _allowed(rel: str) -> bool:
    return any(rel == k or rel.startswith(k + "/") for k in LOCAL_OK) and not rel.startswith(
        "prefect/storage"
    )


def test_demo_pipeline_on_s3_leaves_only_caches_locally(
    s3_endpoint, bucket, prefect_api, tmp_path, artifacts_dir
):
    home, store = str(tmp_path / "home"), f"{bucket}/demo"
    env = {
        **os.environ,
        "DOODLEFLOW_HOME": home,
        "PREFECT_HOME": os.path.join(home, "prefect"),
        "DOODLEFLOW_STORE": store,
        "PREFECT_API_URL": prefect_api,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    out = _demo(env, os.path.join(artifacts_dir, "s3-demo.log"))

    # Every result is in the bucket, and the summary points there.
    assert out["store"] == store and out["refresh"]["path"].startswith(store + "/datasets/demo/")
    fs, root = filesystem(store)
    fs.invalidate_cache()
    top = {p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}
    assert top >= {
        "datasets",
        "caches",
        "runs",
        "ray_results",
        "mlflow-artifacts",
        "prefect-results",
        "eval",
        "pipeline",
    }
    runs = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/runs", detail=False)}
    assert runs >= {"pbe", "omnieditor", "editlora"}
    pbe = out["pbe"]["registered"]
    assert (
        pbe["uri"].startswith(store + "/runs/pbe/")
        and pbe["eval_dir"] == f"{store}/eval/pbe/{out['pbe']['run_id']}"
    )
    assert fs.exists(f"{pbe['eval_dir']}/samples.png") and fs.exists(f"{pbe['eval_dir']}/eval.json")
    artifacts = fs.find(f"{root}/mlflow-artifacts")
    assert any(p.endswith("/images/samples.png") for p in artifacts)
    assert any(re.search(rf"/lineage-{pbe['name']}-[0-9a-f]{{16}}\.json$", p) for p in artifacts)
    assert fs.find(f"{root}/prefect-results")  # the shard tasks' persisted results (rerun cache)
    assert fs.find(f"{root}/ray_results")

    # ... and nothing else stayed on local disk.
    stray = [f for f in _local_files(home) if not _allowed(f)]
    assert not stray, f"results written to local disk: {sorted({f.split('/')[0] for f in stray})} {stray[:5]}"

    # A rerun with nothing new (the nightly case) makes no version and skips every training stage.
    t0 = time.monotonic()
    again = _demo(env, os.path.join(artifacts_dir, "s3-demo-rerun.log"))
    assert time.monotonic() - t0 < 120  # seconds of flow time (~8 s here) plus the CLI's start-up
    assert again["refresh"]["version"] == out["refresh"]["version"] and again["refresh"]["samples_new"] == 0
    assert again["pbe"]["skipped"] and again["omnieditor"]["skipped"] and again["artists"]["skipped"]
    assert again["pbe"]["registered"] == out["pbe"]["registered"]


def _demo(env: dict, log_path: str) -> dict:
    cmd = [sys.executable, "-m", "doodleflow.flows.cli", "demo", "--images", "6", "--steps", "2", "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    with open(log_path, "w") as f:  # kept for CI: the whole run's log
        f.write(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
