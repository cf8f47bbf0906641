"""The dataset-refresh flow end to end on real Prefect runs: bad inputs and the run's report,
determinism across task runners, idempotent reruns, Ray, and an S3 store on moto's server. The
refresh's library behaviour without Prefect (incremental, changed images) is in test_refresh.py."""

from __future__ import annotations

import hashlib
import os
import shutil

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import bbox_row, write_bbox_csv
from doodleflow.flows.dataset_refresh import dataset_refresh
from doodleflow.flows.task_runners import make_task_runner

from tests.curation.trees import BAD_EXPECTED, bad_tree, good_tree

pytestmark = [pytest.mark.slow(seconds=25), pytest.mark.usefixtures("prefect_api")]


def _content(store: str, name: str, version: int | None = None) -> dict[str, tuple]:
    ds = DatasetStore(store, name)
    t = ds.read_table(ds.resolve(version))
    return {r["sample_id"]: tuple(r.values()) for r in t.to_pylist()}


def test_bad_inputs_are_quarantined_and_good_ones_written(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    expected = bad_tree(src)
    s = dataset_refresh(source=src, dataset="bad", store=store, config={"samples_per_shard": 8})
    assert s["version"] == 1 and s["created"]
    assert s["samples_total"] == s["samples_new"] == expected
    assert s["quarantined"] == BAD_EXPECTED
    assert s["dropped"] == {"area_too_small": 1}
    # the version folder is a plain Parquet dataset any reader can open
    t = pads.dataset(s["path"], format="parquet").to_table()
    assert t.num_rows == expected and len(set(t["sample_id"].to_pylist())) == expected
    # the manifest describes the files exactly
    ds = DatasetStore(store, "bad")
    m = ds.manifest(1)
    assert sum(f["rows"] for f in m["files"]) == m["rows_total"] == expected
    for f in m["files"]:
        data = open(os.path.join(s["path"], f["path"]), "rb").read()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    q = ds.read_table(1, name="_quarantine.parquet").to_pandas()
    assert q["reason"].value_counts().to_dict() == BAD_EXPECTED
    row = q[q["reason"] == "box_unparseable"].iloc[0]
    assert row["file"] == "validation-annotations-bbox.csv" and row["line"] == 10 and "0.1x" in row["detail"]
    trunc = q[q["image_id"] == "truncated0000001"].iloc[0]
    assert trunc["reason"] == "unreadable_image" and trunc["sample_id"]
    assert m["inputs"]["images"] == 12 + 2 + 3 and len(m["inputs"]["annotations"]) == 2
    from doodleflow.data.split import is_heldout

    held = [
        i for i in t["image_id"].to_pylist() if is_heldout(i, m["heldout"]["fraction"], m["heldout"]["seed"])
    ]
    assert m["heldout"]["samples"] == len(held) and m["heldout"]["images"] == len(set(held))
    # the run carries its report as Prefect artifacts
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["refresh-bad"]))
        )
        table = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["refresh-bad-reasons"]))
        )
    assert arts and "box_unparseable | 1" in arts[0].data and "samples/s per core" in arts[0].data
    assert arts[0].flow_run_id is not None
    assert table and "unreadable_image" in str(table[0].data)


def test_rerun_is_idempotent_and_content_is_deterministic(tmp_path):
    src = str(tmp_path / "src")
    good_tree(src, n=10)
    a = dataset_refresh(source=src, dataset="d", store=str(tmp_path / "a"), config={"samples_per_shard": 4})
    again = dataset_refresh(
        source=src, dataset="d", store=str(tmp_path / "a"), config={"samples_per_shard": 4}
    )
    assert again["version"] == 1 and not again["created"] and again["samples_new"] == 0
    assert DatasetStore(str(tmp_path / "a"), "d").versions() == [1]
    # a fresh store, one worker, another shard size: byte-identical samples
    b = dataset_refresh.with_options(task_runner=make_task_runner(workers=1))(
        source=src, dataset="d", store=str(tmp_path / "b"), config={"samples_per_shard": 7}
    )
    assert a["samples_total"] == b["samples_total"] > 0
    assert _content(str(tmp_path / "a"), "d") == _content(str(tmp_path / "b"), "d")
    ma = DatasetStore(str(tmp_path / "a"), "d").manifest(1)
    mb = DatasetStore(str(tmp_path / "b"), "d").manifest(1)
    assert ma["config_hash"] == mb["config_hash"]


def test_s3_source_and_store_on_a_real_s3_endpoint(tmp_path, bucket):
    from doodleflow.data.fsutil import filesystem

    local_src = str(tmp_path / "src")
    expected = bad_tree(local_src, n=6)
    fs, _ = filesystem(bucket)
    fs.put(local_src + "/", f"{bucket[5:]}/src/", recursive=True)
    store = f"{bucket}/store"
    s = dataset_refresh(source=f"{bucket}/src", dataset="s3ds", store=store, config={"samples_per_shard": 4})
    assert s["path"].startswith(f"{bucket}/store/datasets/s3ds/versions/v000001")
    assert s["samples_total"] == expected and s["quarantined"] == BAD_EXPECTED
    again = dataset_refresh(
        source=f"{bucket}/src", dataset="s3ds", store=store, config={"samples_per_shard": 4}
    )
    assert not again["created"] and again["version"] == 1
    ds = DatasetStore(store, "s3ds")
    with ds.fs.open(ds.part_paths(1)[0], "rb") as f:
        assert pq.read_table(f).num_rows > 0
    assert not os.path.exists(os.path.join(os.environ["DOODLEFLOW_HOME"], "store", "datasets", "s3ds"))
    # same inputs, local store (in process): same content
    local = refresh_in_process(
        local_src, "s3ds", str(tmp_path / "store"), CurationConfig(samples_per_shard=4)
    )
    assert local["samples_total"] == expected
    assert _content(store, "s3ds") == _content(str(tmp_path / "store"), "s3ds")


def test_refresh_on_ray(tmp_path, ray_local):
    """Prefect's Ray task runner joins the session's local Ray (ignore_reinit_error): no second start."""
    src = str(tmp_path / "src")
    good_tree(src, n=4, real=False)
    ray_run = dataset_refresh.with_options(task_runner=make_task_runner(workers=2, ray="local"))
    s = ray_run(source=src, dataset="ray", store=str(tmp_path / "r"), config={"samples_per_shard": 3})
    p = dataset_refresh(source=src, dataset="ray", store=str(tmp_path / "p"), config={"samples_per_shard": 3})
    assert s["samples_total"] == p["samples_total"] > 0
    assert _content(str(tmp_path / "r"), "ray") == _content(str(tmp_path / "p"), "ray")


def test_structural_error_fails_fast_and_writes_nothing(tmp_path):
    from doodleflow.data.errors import InputError

    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=2, real=False)
    write_bbox_csv(
        os.path.join(src, "annotations", "test-annotations-bbox.csv"),
        [bbox_row("x", "/m/05z6w", (0.1, 0.1, 0.5, 0.5), v6=False)],
        v6=False,
    )
    p = os.path.join(src, "annotations", "test-annotations-bbox.csv")
    text = open(p).read()
    open(p, "w").write(text.replace("YMax", "Ymax"))
    with pytest.raises(InputError, match=r"test-annotations-bbox.csv: required column 'YMax' missing"):
        dataset_refresh(source=src, dataset="s", store=store)
    assert not os.path.exists(os.path.join(store, "datasets", "s", "shards"))
    shutil.rmtree(src)


def test_the_flow_takes_the_whole_config_as_one_parameter(tmp_path):
    """A deployment's partial dict by section reaches every field (here a SampleConfig one); a typo fails
    the run before any work, naming the key."""
    from doodleflow.data.config import CurationConfig, SampleConfig
    from doodleflow.infra.errors import ConfigError

    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=2, real=False)
    s = dataset_refresh(
        source=src, dataset="c", store=store, config={"samples_per_shard": 4, "sample": {"jpeg_quality": 80}}
    )
    want = CurationConfig(samples_per_shard=4, sample=SampleConfig(jpeg_quality=80))
    assert DatasetStore(store, "c").manifest(s["version"])["config_hash"] == want.content_hash()
    assert want.content_hash() != CurationConfig().content_hash()
    with pytest.raises(ConfigError, match=r"unknown setting sample\.jpeg_qualty"):
        dataset_refresh(source=src, dataset="c2", store=store, config={"sample": {"jpeg_qualty": 80}})
    assert not os.path.exists(os.path.join(store, "datasets", "c2"))
