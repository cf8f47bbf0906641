"""One version commit for both dataset kinds (data/commit.py): pair datasets get what triples had
alone before: the held-out split in the manifest, the wait for an earlier concurrent claim (two runs
on the same inputs make one version), and the failpoint before the manifest."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

from doodleflow.data.commit import _write_version, commit_draft
from doodleflow.data.fsutil import temp_beside
from doodleflow.data.pairs import draft_pairs_version, ingest_pairs_in_process, plan_ingest
from doodleflow.data.pairs_build import build_pairs_unit
from doodleflow.data.pairs_synthetic import write_photodoodle_style
from doodleflow.data.split import is_heldout
from doodleflow.data.store import DatasetStore

from tests.conftest import REPO


def test_a_pair_version_records_its_heldout_split(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    write_photodoodle_style(src, "magic", 12, seed=3)
    s = ingest_pairs_in_process(src, "magic", store)
    ds = DatasetStore(store, "magic")
    m = ds.manifest(s["version"])
    ids = ds.read_table(s["version"], columns=["pair_id"])["pair_id"].to_pylist()
    assert m["kind"] == "photodoodle-pairs" and m["parent"] is None and m["rows_total"] == 12
    h = m["heldout"]
    assert (h["column"], h["fraction"], h["seed"]) == ("pair_id", 0.1, 0)
    assert h["pairs"] == sum(is_heldout(i, 0.1, 0) for i in ids)
    assert h["method"] == "sha256(f'{seed}:{pair_id}') < fraction * 2**256"


def _make_draft(src: str, store: str):
    """Pairs built once; the returned draft() is made against the store as it is when called."""
    write_photodoodle_style(src, "magic", 4, seed=3)
    plan, units = plan_ingest(src, None, None, 2, store, "magic")
    stats = [build_pairs_unit(u, store, "magic") for u in units]
    return lambda ds: draft_pairs_version(ds, plan, stats)


def test_two_pair_ingests_at_once_make_one_version(tmp_path):
    """Run A has claimed version 1 and is still writing; run B, with the same content, claims 2, waits
    for A's live claim, then finds A's version holds what it would write and gives its claim back."""
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    draft = _make_draft(src, store)
    ds = DatasetStore(store, "magic")
    first, second = draft(ds), draft(ds)
    claimed = threading.Event()
    b_claim = os.path.join(ds.version_path(2), "_claim")

    def run_a() -> None:
        v = ds.claim_next_version("run-a")
        claimed.set()
        # Still placing files when B arrives: A writes only once B holds its claim, and 1.5 s after,
        # however slow the machine (a bounded wait for the condition, not a guess at B's timing).
        deadline = time.monotonic() + 120
        while not os.path.exists(b_claim) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.5)
        _write_version(ds, v, first, "run-a")

    a = threading.Thread(target=run_a)
    a.start()
    assert claimed.wait(120)
    t0 = time.perf_counter()
    b = commit_draft(ds, second, "run-b")
    waited = time.perf_counter() - t0
    a.join()
    assert (b.version, b.created) == (1, False) and waited > 0.5
    assert ds.versions() == [1] and not os.path.exists(ds.version_path(2))
    assert ds.manifest(1)["run_id"] == "run-a"


def _age(path: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_claim_caught_half_made_is_waited_for(tmp_path):
    """A local claim is a folder, then a temporary file, then the link to `_claim`. Run B can list the
    folder before `_claim` exists (CI once got two versions this way); it must wait for A all the same,
    even when the folder is older than the grace (A stalled): A's temporary file names a live writer."""
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    draft = _make_draft(src, store)
    ds = DatasetStore(store, "magic")
    claim = os.path.join(ds.version_path(1), "_claim")
    halfway = threading.Event()

    def run_a() -> None:
        with temp_beside(claim) as tmp:
            with open(tmp, "w") as f:
                json.dump(
                    {
                        "run_id": "run-a",
                        "host": socket.gethostname(),
                        "pid": os.getpid(),
                        "time": time.time(),
                    },
                    f,
                )
            _age(ds.version_path(1), 120)
            halfway.set()
            time.sleep(1.5)
            os.link(tmp, claim)
        _write_version(ds, 1, draft(ds), "run-a")

    a = threading.Thread(target=run_a)
    a.start()
    assert halfway.wait(120)
    b = commit_draft(ds, draft(ds), "run-b")
    a.join()
    assert (b.version, b.created) == (1, False)
    assert ds.versions() == [1] and ds.manifest(1)["run_id"] == "run-a"


def test_a_claim_folder_left_by_a_dead_writer_does_not_block(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    draft = _make_draft(src, store)
    ds = DatasetStore(store, "magic")
    claim = os.path.join(ds.version_path(1), "_claim")
    # A writer that dies between its temporary file and the link (os._exit skips all cleanup).
    code = f"import os; from doodleflow.data.fsutil import temp_beside as t; open(t({claim!r}).__enter__(), 'w'); os._exit(9)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 9
    assert len(os.listdir(ds.version_path(1))) == 1
    _age(ds.version_path(1), 120)
    t0 = time.perf_counter()
    done = commit_draft(ds, draft(ds), "run-b")
    assert (done.version, done.created) == (2, True) and time.perf_counter() - t0 < 5
    assert ds.versions() == [2]


def test_a_pair_ingest_killed_before_its_manifest_leaves_no_version(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    write_photodoodle_style(src, "magic", 3, seed=3)
    code = f"from doodleflow.data.pairs import ingest_pairs_in_process as f; f({src!r}, 'magic', {store!r})"
    env = {**os.environ, "DOODLEFLOW_FAILPOINT": "commit.before_manifest"}
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, timeout=300)
    assert p.returncode == 137, p.stderr.decode()[-2000:]
    ds = DatasetStore(store, "magic")
    assert ds.versions() == [] and os.path.exists(os.path.join(ds.version_path(1), "_claim"))
    done = ingest_pairs_in_process(src, "magic", store)  # the dead run's claim does not block
    assert (done["version"], done["created"], done["pairs_total"]) == (2, True, 3)
    assert ds.versions() == [2]
