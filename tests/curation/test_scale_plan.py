"""Planning at ~1M annotation rows (V6 layout, real class list, 16 real photos present): the memory bound,
work sized by the images present, the unchanged rerun that does not parse, and the rerun with new
images that reuses the triage cache instead of parsing. Timings are in bench/scale.py; this test
asserts behaviour only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pyarrow.compute as pc
import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore

from bench.scale_data import TRAIN_CSV, add_photos, make_tree, present_ids

ROWS = 1_000_000
PRESENT = 16
# Planning 1M rows peaks at ~0.41 GB here (Python, pandas and pyarrow alone are ~0.2 GB); the bound
# leaves room for allocator noise but fails if anything per row becomes a Python object again.
RSS_BOUND_GB = 1.0  # 1M rows (the 14.6M-row target is 3 GB: docs/benchmarks.md)

# Peak RSS from VmHWM: ru_maxrss survives exec, so a child of a big pytest process (torch loaded by
# earlier tests) would report its parent's size.
PROBE = """
import json, re, sys
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
p = plan_inputs(sys.argv[1], None, CurationConfig())
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"rss_gb": hwm / 1e6, "jobs": len(p.jobs),
                  "images": len(p.images), "absent": p.absent.num_rows, "inputs": p.inputs,
                  "dropped": p.triage.dropped, "quarantine": len(p.quarantine), "warnings": p.warnings}))
"""


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("scale") / "src")
    ids = make_tree(root, ROWS, PRESENT, seed=5)
    return root, ids


def test_planning_a_million_rows_stays_small(tree):
    root, ids = tree
    out = subprocess.run([sys.executable, "-c", PROBE, root], capture_output=True, text=True, check=True)
    p = json.loads(out.stdout.strip().splitlines()[-1])
    assert p["rss_gb"] < RSS_BOUND_GB, p["rss_gb"]
    # the plan is sized by the photos present; the rest is one row per absent image
    assert 0 < p["images"] <= PRESENT and p["jobs"] < 20 * PRESENT
    assert p["absent"] + p["images"] <= len(ids) and p["absent"] > 0.95 * len(ids)
    assert p["quarantine"] == 0 and p["dropped"]["area_too_small"] > 0
    assert p["warnings"] and "not under" in p["warnings"][0]


def test_unchanged_rerun_does_not_parse_and_new_images_cost_their_work(tree, tmp_path):
    root, ids = tree
    store = str(tmp_path / "store")
    cfg = CurationConfig(samples_per_shard=64)
    v1 = refresh_in_process(root, "big", store, cfg=cfg, workers=2)
    assert v1["version"] == 1 and v1["samples_total"] > 0 and v1["images_absent"] > 0.95 * len(ids)
    absent = DatasetStore(store, "big").read_table(1, name="_absent_images.parquet")
    assert absent.num_rows == v1["images_absent"] and pc.min(absent["boxes"]).as_py() >= 1
    # Same size, same mtime, different bytes: a rerun that parsed would fail on them; it must not parse.
    csv = os.path.join(root, "annotations", TRAIN_CSV)
    st = os.stat(csv)
    with open(csv, "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"\x00not,a,csv\x00")
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = refresh_in_process(root, "big", store, cfg=cfg, workers=2)
    assert again["version"] == 1 and not again["created"] and "skipped" in again
    assert DatasetStore(store, "big").versions() == [1]
    # Now restore sane bytes under a new mtime and add 2 photos: one parse, only their samples built.
    with open(csv, "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"0" * len(b"\x00not,a,csv\x00"))
    make_tree(root, ROWS, 0, seed=5)  # rewrites the same file (deterministic), new mtime
    add_photos(root, present_ids(ids, 2, offset=1), split="train_9")
    entry = _entries(DatasetStore(store, "big"))
    v2 = refresh_in_process(root, "big", store, cfg=cfg, workers=2)
    assert v2["version"] == 2 and v2["throughput"]["samples_built"] == v2["samples_new"] > 0
    assert v2["samples_total"] == v1["samples_total"] + v2["samples_new"]
    assert v2["images_absent"] <= v1["images_absent"] - 1
    # the rewritten file was triaged again; the entry of its old version is gone
    now = _entries(DatasetStore(store, "big"))
    assert len({p.split(os.sep)[0] for p in now}) == 1 and not set(now) & set(entry)


def _entries(ds: DatasetStore) -> dict[str, int]:
    """The triage cache's files (data/triage_cache.py) and their mtimes: a rewrite changes them."""
    root = os.path.join(ds.root, "triage")
    return {
        os.path.join(k, n): os.stat(os.path.join(root, k, n)).st_mtime_ns
        for k in os.listdir(root)
        for n in os.listdir(os.path.join(root, k))
    }


def test_new_images_reuse_the_triage_and_plan_as_a_cold_plan(tree, tmp_path):
    root, _ = tree
    ds, cfg = DatasetStore(str(tmp_path / "store"), "big"), CurationConfig()
    first = plan_inputs(root, None, cfg, store=ds)
    before = _entries(ds)
    absent = first.absent["image_id"].to_pylist()
    new = [absent[len(absent) // 3], absent[2 * len(absent) // 3]]
    added = add_photos(root, new, split="train_new")
    try:
        again = plan_inputs(root, None, cfg, store=ds)
        assert _entries(ds) == before  # the entry was reused (a miss rewrites it): the CSV not parsed
        cold = plan_inputs(root, None, cfg)  # a temporary store: parsed and triaged from scratch
    finally:
        for p in added:
            os.remove(p)
    for f in ("jobs", "images", "quarantine"):
        pd.testing.assert_frame_equal(getattr(again, f), getattr(cold, f))
    pd.testing.assert_frame_equal(again.triage.kept, cold.triage.kept)
    assert again.absent.equals(cold.absent) and again.inputs == cold.inputs
    assert again.triage.dropped == cold.triage.dropped
    assert set(again.jobs["image_id"]) == set(first.jobs["image_id"]) | set(new)
    assert again.absent.num_rows == first.absent.num_rows - 2
