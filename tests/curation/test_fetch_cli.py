"""`doodleflow fetch openimages` as a user runs it: bad arguments are one line before anything starts;
a real run (Prefect flow, process pool) killed in the middle resumes, skipping the verified files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from doodleflow.data.fsutil import filesystem
from doodleflow.flows.cli import main

from tests.conftest import REPO
from tests.curation.oi_mirror import make_mirror


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "--limit must be >= 1, got 0"),
        (["--from", "/no/such/mirror"], "--from /no/such/mirror: no such directory"),
        (["--annotations", "ftp://x"], "--annotations ftp://x: use s3://bucket/prefix"),
        (["--absent", "../up"], "invalid dataset name '../up'"),
        (["--absent", "nope"], "--absent nope: no such dataset in"),
        (["--classes", " , "], "--classes: no class given"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--absent", "d", "--classes", "Penguin"], "--absent and --classes select images two ways"),
        (["--dest", os.path.join(REPO, "README.md")], "README.md: not a directory"),
    ],
)
def test_bad_arguments_are_one_line_before_anything_starts(tmp_path, capsys, args, message):
    dest = tmp_path / "dest"
    assert main(["fetch", "openimages", "--dest", str(dest), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("doodleflow fetch: error: ") and message in err and "\n" not in err
    assert not dest.exists()  # nothing written


def _cli(dest: str, bucket: str, env: dict) -> subprocess.Popen:
    args = ["fetch", "openimages", "--dest", dest, "--from", bucket, "--annotations", bucket]
    args += ["--verify", "index", "--threads", "2", "--workers", "1", "--retries", "0", "--json"]
    return subprocess.Popen(
        [sys.executable, "-m", "doodleflow.flows.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _jpgs(root: str) -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(n for n in os.listdir(root) if n.endswith(".jpg"))
    return []


@pytest.mark.slow(seconds=50)
@pytest.mark.usefixtures("prefect_api")
def test_killed_fetch_resumes_and_skips_verified_files(bucket, tmp_path):
    fs, _ = filesystem(bucket)
    good = make_mirror(fs, bucket[len("s3://") :], n_copies=14)
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    dest = str(tmp_path / "oi")
    root = os.path.join(dest, "images", "train")
    p = _cli(dest, bucket, env | {"DOODLEFLOW_DELAY": "fetch-image:0.5"})
    deadline = time.monotonic() + 240
    while len(_jpgs(root)) < 4 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()[1][-3000:]
    os.killpg(p.pid, signal.SIGKILL)  # the CLI and its pool workers, mid-download
    p.communicate()
    before = {n: os.stat(os.path.join(root, n)).st_ino for n in _jpgs(root)}
    assert 4 <= len(before) < len(good)

    p = _cli(dest, bucket, env)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    s = json.loads(out.strip().splitlines()[-1])
    assert s["skipped"] == len(before) and s["downloaded"] == len(good) - len(before)
    assert (s["size_mismatch"], s["md5_mismatch"], s["missing"]) == (1, 1, 2)
    assert set(os.listdir(root)) == {f"{i}.jpg" for i in good}  # no temporary file left by the kill
    for n, ino in before.items():
        assert os.stat(os.path.join(root, n)).st_ino == ino  # verified in place, not downloaded again
    for iid, data in good.items():
        with open(os.path.join(root, f"{iid}.jpg"), "rb") as f:
            assert hashlib.md5(f.read(), usedforsecurity=False).digest() == hashlib.md5(data).digest()
    assert "next: doodleflow refresh --source" in out
    assert f"fetch train: {len(good) + 4}/{len(good) + 4} images" in err  # the terminal's progress line
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:  # progress in the Prefect UI, and the summary
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["progress-fetch-train"]))
        )
        report = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["fetch-train"]))
        )
    assert any(a.type == "progress" and float(a.data) == 100.0 for a in arts)
    assert report and "| md5_mismatch | 1 |" in report[0].data
