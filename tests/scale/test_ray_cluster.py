"""The refresh joins an existing two-node Ray cluster through RAY_ADDRESS (with token auth); losing
the second node mid-refresh loses no sample: its shards are retried on the surviving node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore

from tests.conftest import REPO
from tests.curation.trees import good_tree
from tests.scale.ray_cluster import TwoNodeCluster

pytestmark = [pytest.mark.slow(seconds=55), pytest.mark.usefixtures("prefect_api")]


@pytest.fixture
def cluster():
    # Each shard takes >= 0.5 s on the nodes, so shards are still queued when the second node is
    # killed however fast the machine is (data/faults.py: delay points).
    c = TwoNodeCluster(cpus_per_node=1, env={"DOODLEFLOW_DELAY": "build-shard:0.5"})
    try:
        yield c.start()  # a failed start stops its own nodes (ray_cluster.py)
    finally:
        c.stop()


def _stats(shards: str) -> list[dict]:
    if not os.path.isdir(shards):
        return []
    out = []
    for f in os.listdir(shards):
        if f.endswith(".json"):
            with open(os.path.join(shards, f)) as fh:
                out.append(json.load(fh))
    return out


def _workers(shards: str) -> set[str]:
    return {s["worker"] for s in _stats(shards)}


def _refresh(src, store, env, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "doodleflow.flows.cli",
            "refresh",
            "--source",
            src,
            "--dataset",
            "r",
            "--store",
            store,
            "--samples-per-shard",
            "2",
            "--json",
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_refresh_on_a_two_node_cluster_survives_losing_a_node(cluster, tmp_path):
    src, store, clean = str(tmp_path / "src"), str(tmp_path / "store"), str(tmp_path / "clean")
    good_tree(src, n=24, real=False)
    env = {**cluster.env, "RAY_ADDRESS": cluster.address}
    p = _refresh(src, store, env)
    shards = os.path.join(store, "datasets", "r", "shards")
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and len(_workers(shards)) < 2:
        time.sleep(0.05)  # wait until the second node has finished a shard of its own
    assert p.poll() is None, "refresh finished before the node could be killed"
    cluster.kill_second_node()
    before = len(_stats(shards))
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-4000:]
    got = json.loads(out.strip().splitlines()[-1])
    workers = _workers(shards)
    assert len(workers) == 2 and all(w.startswith("ray:") for w in workers)  # both nodes built shards
    assert len(_stats(shards)) > before  # and work went on after the node was lost
    # the reference: the same inputs refreshed in process, no cluster (the CLI's equivalence to the
    # in-process refresh is tested in tests/curation/test_crash.py)
    want = refresh_in_process(src, "r", clean, CurationConfig(samples_per_shard=2))
    assert got["samples_total"] == want["samples_total"] > 0
    a = DatasetStore(store, "r").read_table(1).sort_by("sample_id")
    b = DatasetStore(clean, "r").read_table(1).sort_by("sample_id")
    assert a.equals(b)  # every sample, byte-identical, none twice
