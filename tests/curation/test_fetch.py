"""`fetch openimages` against an OpenImages mirror on moto's S3, read with unsigned requests: every image
verified (size and MD5 of the index), bad ones retried then listed, nothing half-written, reruns skip
what is verified, and fetch + refresh completes a dataset."""

from __future__ import annotations

import csv
import hashlib
import json
import os

import pytest
from doodleflow.data.fsutil import filesystem
from doodleflow.data.oi_fetch import FetchConfig, fetch_in_process
from doodleflow.data.oi_select import md5_hex
from doodleflow.data.refresh import refresh_in_process
from doodleflow.infra.errors import ConfigError

from tests.curation.oi_mirror import CHANGED, PENGUIN_ID, REAL_INDEX_IDS, TRUNCATED, copies, make_mirror


@pytest.fixture
def mirror(bucket, monkeypatch):
    fs, _ = filesystem(bucket)
    good = make_mirror(fs, bucket[len("s3://") :])
    # The fetch runs with no credentials at all: only unsigned requests can work.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    return bucket, good


def _cfg(dest, bucket: str, **kw) -> FetchConfig:
    kw = {"verify": "index", "retries": 1, "threads": 4} | kw
    return FetchConfig(dest=str(dest), images_from=bucket, annotations_from=bucket, **kw)


def _md5(path) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read(), usedforsecurity=False).hexdigest()


def test_original_md5_is_base64_of_the_digest():
    # A real index row: OriginalMD5 `KFukvivpCM5QXl5SqKe41g==` is the 16-byte digest in base64.
    assert md5_hex("KFukvivpCM5QXl5SqKe41g==") == "285ba4be2be908ce505e5e52a8a7b8d6"
    assert md5_hex("not base64!") is None and md5_hex("") is None


def test_unsigned_requests_are_refused_by_a_private_bucket(bucket, monkeypatch, tmp_path):
    fs, _ = filesystem(bucket)
    fs.pipe_file(f"{bucket[5:]}/class-descriptions-boxable.csv", b"/m/05z6w,Penguin\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(ConfigError, match="access denied to a request unsigned"):
        fetch_in_process(_cfg(tmp_path, bucket))


def test_fetch_verifies_retries_and_lists_failures(mirror, tmp_path):
    bucket, good = mirror
    s = fetch_in_process(_cfg(tmp_path, bucket))
    assert s["selected"] == len(good) + 4
    assert (s["downloaded"], s["skipped"], s["missing"]) == (len(good), 0, 2)
    assert (s["size_mismatch"], s["md5_mismatch"], s["error"], s["failed"]) == (1, 1, 0, 4)
    root = tmp_path / "images" / "train"
    assert sorted(os.listdir(root)) == sorted(f"{i}.jpg" for i in good)  # no bad file, no temporary file
    for iid, data in good.items():
        assert (root / f"{iid}.jpg").read_bytes() == data
    with open(s["failures_csv"]) as f:
        rows = {r["image_id"]: r for r in csv.DictReader(f)}
    assert {i: r["reason"] for i, r in rows.items()} == {
        TRUNCATED: "size_mismatch",
        CHANGED: "md5_mismatch",
        REAL_INDEX_IDS[0]: "missing",
        REAL_INDEX_IDS[1]: "missing",
    }
    assert "after 2 attempts" in rows[CHANGED]["detail"]  # retried once, then listed
    assert "after" not in rows[REAL_INDEX_IDS[0]]["detail"]  # a missing object is not retried
    assert json.loads(open(s["report"]).read())["failed"] == 4
    for name in ("class-descriptions-boxable.csv", "oidv6-train-annotations-bbox.csv"):
        assert (tmp_path / name).is_file()


def test_rerun_skips_verified_files_and_replaces_a_damaged_one(mirror, tmp_path):
    bucket, good = mirror
    fetch_in_process(_cfg(tmp_path, bucket))
    damaged = tmp_path / "images" / "train" / f"{PENGUIN_ID}.jpg"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0x01  # same size, other bytes: only the MD5 tells
    damaged.write_bytes(bytes(data))
    s = fetch_in_process(_cfg(tmp_path, bucket))
    assert (s["downloaded"], s["skipped"]) == (1, len(good) - 1)
    assert _md5(damaged) == hashlib.md5(good[PENGUIN_ID], usedforsecurity=False).hexdigest()


def test_limit_and_classes_select_deterministically(mirror, tmp_path):
    bucket, good = mirror
    s = fetch_in_process(_cfg(tmp_path / "a", bucket, limit=2))
    # the two smallest ImageIDs: the penguin photo and a real index row that the mirror lacks
    assert (s["selected"], s["downloaded"], s["missing"]) == (2, 1, 1)
    assert os.listdir(tmp_path / "a" / "images" / "train") == [f"{PENGUIN_ID}.jpg"]
    s = fetch_in_process(_cfg(tmp_path / "b", bucket, classes=("penguin",)))
    assert s["selected"] == len(good) + 2  # every image with a Penguin box; the real index rows have none
    with pytest.raises(ConfigError, match="no class 'Unicorn'"):
        fetch_in_process(_cfg(tmp_path / "c", bucket, classes=("Unicorn",)))


def test_fetch_absent_then_refresh_completes_the_dataset(mirror, tmp_path):
    bucket, good = mirror
    src, store = tmp_path / "src", str(tmp_path / "store")
    fetch_in_process(_cfg(src, bucket, limit=1))
    v1 = refresh_in_process(str(src), "oi", store)
    assert v1["samples_total"] == 5  # the five Penguin boxes of the one image fetched
    # absent: the copies, the two bad objects, and the image of the real bbox head (not in this index)
    assert v1["images_absent"] == len(copies(2)) + 3
    s = fetch_in_process(_cfg(src, bucket, absent="oi", store=store))
    assert s["selected"] == len(copies(2)) + 2 and s["downloaded"] == len(copies(2)) and s["failed"] == 2
    v2 = refresh_in_process(str(src), "oi", store)
    assert v2["samples_total"] == 5 * len(good) and v2["samples_new"] == 5 * len(copies(2))
    assert v2["images_absent"] == 3


def test_etag_mode_checks_the_object_itself(mirror, tmp_path):
    """The public bucket's copies are rescaled (not the index's originals): etag mode checks each
    object against its own Content-Length and ETag, so a self-consistent object passes."""
    bucket, good = mirror
    s = fetch_in_process(_cfg(tmp_path, bucket, verify="etag"))
    assert s["downloaded"] == len(good) + 2 and s["missing"] == 2
    again = fetch_in_process(_cfg(tmp_path, bucket, verify="etag"))
    assert again["skipped"] == len(good) + 2 and again["downloaded"] == 0


def test_fetch_deployments_build_a_fetch_config(tmp_path):
    import yaml
    from doodleflow.flows.fetch_openimages import _config
    from doodleflow.flows.serve import deployments

    from tests.conftest import REPO

    with open(os.path.join(REPO, "infra", "prefect.yaml")) as f:
        dep = next(d for d in yaml.safe_load(f)["deployments"] if d["name"] == "fetch-openimages")
    assert dep["entrypoint"] == "flows/fetch_openimages.py:fetch_openimages"
    cfg = _config({**dep["parameters"]["config"], "dest": str(tmp_path), "store": None})
    assert (cfg.split, cfg.absent, cfg.images_from) == ("train", "openimages-pbe", "s3://open-images-dataset")
    served = {d.name: d for d in deployments(source=str(tmp_path), dataset="nightly")}
    assert _config(served["fetch-openimages"].parameters["config"]).absent == "nightly"


def test_a_local_mirror_and_annotations_over_http(mirror, tmp_path):
    """`--from DIR` (a folder in the bucket's layout) and `--annotations http://...`."""
    import functools
    import http.server
    import threading

    bucket, good = mirror
    fs, _ = filesystem(bucket)
    local = tmp_path / "mirror"
    fs.get(f"{bucket[5:]}/", str(local), recursive=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(local))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = FetchConfig(
            dest=str(tmp_path / "dest"), images_from=str(local), annotations_from=url, verify="index"
        )
        s = fetch_in_process(cfg)
    finally:
        server.shutdown()
    assert (s["downloaded"], s["size_mismatch"], s["md5_mismatch"], s["missing"]) == (len(good), 1, 1, 2)
    assert (tmp_path / "dest" / "train-images-boxable-with-rotation.csv").read_bytes() == (
        local / "train-images-boxable-with-rotation.csv"
    ).read_bytes()
