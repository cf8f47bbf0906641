"""Crashes: a refresh killed at any point leaves readers on the previous version, and the next run
completes the work without duplicates, reusing the shards that were finished."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source

from tests.conftest import REPO
from tests.curation.trees import good_tree

pytestmark = [pytest.mark.slow(seconds=60), pytest.mark.usefixtures("prefect_api")]


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "doodleflow.flows.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def _wait_killing_leftovers(p: subprocess.Popen, timeout: float = 300) -> int:
    """Wait for the CLI process, then kill whatever it left in its process group (a crashed parent
    leaves its pool workers holding the output pipes)."""
    code = p.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    return code


def _refresh_json(src: str, store: str, *extra: str, env: dict | None = None) -> dict:
    p = _cli("refresh", "--source", src, "--dataset", "c", "--store", store, "--json", *extra, env=env)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_crash_before_commit_leaves_previous_version_visible(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=4, real=False)
    v1 = refresh_in_process(src, "c", store)  # the previous version: made in process (not under test)
    assert v1["version"] == 1 and v1["created"]
    new = make_source(src, 2, seed=5, size=(640, 480), boxes_per_image=(1, 1), salt="late")
    p = _cli(
        "refresh",
        "--source",
        src,
        "--dataset",
        "c",
        "--store",
        store,
        env={"DOODLEFLOW_FAILPOINT": "commit.before_manifest"},
    )
    assert _wait_killing_leftovers(p) == 137
    ds = DatasetStore(store, "c")
    assert ds.latest() == 1 and ds.read_table(1).num_rows == v1["samples_total"]
    assert os.path.isdir(ds.version_path(2)) and 2 not in ds.versions()  # half-made, invisible
    done = _refresh_json(src, store)
    assert done["created"] and done["samples_total"] == v1["samples_total"] + len(new)
    assert done["throughput"]["shards_reused"] >= 1 and done["throughput"]["samples_built"] == 0
    ids = ds.read_table(done["version"], columns=["sample_id"])["sample_id"].to_pylist()
    assert len(ids) == len(set(ids)) == done["samples_total"]


def test_sigkill_during_build_then_rerun_reuses_finished_shards(tmp_path):
    src, store, clean = str(tmp_path / "src"), str(tmp_path / "store"), str(tmp_path / "clean")
    good_tree(src, n=16, real=False)
    args = (
        "refresh",
        "--source",
        src,
        "--dataset",
        "c",
        "--store",
        store,
        "--samples-per-shard",
        "2",
        "--workers",
        "1",
    )
    p = _cli(*args)
    shards = os.path.join(store, "datasets", "c", "shards")
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if os.path.isdir(shards) and sum(f.endswith(".json") for f in os.listdir(shards)) >= 3:
            break
        time.sleep(0.05)
    assert p.poll() is None, "the refresh finished before it could be killed"
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    ds = DatasetStore(store, "c")
    assert ds.versions() == []
    done = _refresh_json(src, store, "--samples-per-shard", "2", "--workers", "1")
    assert done["version"] == 1 and done["throughput"]["shards_reused"] >= 3
    fresh = refresh_in_process(src, "c", clean, CurationConfig(samples_per_shard=2))  # the reference
    assert done["samples_total"] == fresh["samples_total"]
    a = ds.read_table(1).sort_by("sample_id")
    b = DatasetStore(clean, "c").read_table(1).sort_by("sample_id")
    assert a.equals(b)


def test_crash_and_rerun_on_s3(tmp_path, bucket):
    """The same guarantees with the store on a real S3 endpoint (moto's server on loopback)."""
    src, store = str(tmp_path / "src"), f"{bucket}/store"
    good_tree(src, n=4, real=False)
    p = _cli(
        "refresh",
        "--source",
        src,
        "--dataset",
        "c",
        "--store",
        store,
        env={"DOODLEFLOW_FAILPOINT": "commit.before_manifest"},
    )
    assert _wait_killing_leftovers(p) == 137
    ds = DatasetStore(store, "c")
    assert ds.versions() == [] and ds.fs.exists(ds.version_path(1) + "/_claim")
    done = _refresh_json(src, store)
    assert done["version"] == 2 and done["created"] and done["throughput"]["samples_built"] == 0
    assert ds.versions() == [2]
    ids = ds.read_table(2, columns=["sample_id"])["sample_id"].to_pylist()
    assert len(ids) == len(set(ids)) == done["samples_total"] > 0
    again = refresh_in_process(src, "c", store)
    assert not again["created"] and again["version"] == 2


def test_two_refreshes_at_once_make_one_version(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=10, real=False)
    args = (
        "refresh",
        "--source",
        src,
        "--dataset",
        "c",
        "--store",
        store,
        "--json",
        "--samples-per-shard",
        "3",
        "--workers",
        "1",
    )
    procs = [_cli(*args) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    ds = DatasetStore(store, "c")
    assert ds.versions() == [1] and [o["version"] for o in outs] == [1, 1]
    assert sorted(o["created"] for o in outs) == [False, True]
    ids = ds.read_table(1, columns=["sample_id"])["sample_id"].to_pylist()
    assert len(ids) == len(set(ids)) == outs[0]["samples_total"] > 0
