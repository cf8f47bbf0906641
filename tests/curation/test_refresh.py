"""A refresh without Prefect (`refresh_in_process`, the library's entry point): incremental refreshes
carry unchanged samples by hard link, removed or changed inputs drop or rebuild only their samples,
and a local process pool makes the same bytes as building in this process."""

from __future__ import annotations

import os

from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source

from tests.curation.trees import good_tree

CFG4 = CurationConfig(samples_per_shard=4)


def _content(store: str, name: str, version: int | None = None) -> dict[str, tuple]:
    ds = DatasetStore(store, name)
    t = ds.read_table(ds.resolve(version))
    return {r["sample_id"]: tuple(r.values()) for r in t.to_pylist()}


def test_incremental_refresh_processes_only_what_is_new(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=8, real=False)
    v1 = refresh_in_process(src, "inc", store, CFG4)
    new_rows = make_source(src, 3, seed=7, size=(640, 480), boxes_per_image=(1, 1), salt="new")
    v2 = refresh_in_process(src, "inc", store, CFG4)
    assert v2["version"] == 2 and v2["samples_new"] == len(new_rows)
    assert v2["samples_total"] == v1["samples_total"] + len(new_rows)
    assert v2["throughput"]["samples_built"] == len(new_rows)
    old, new = _content(store, "inc", 1), _content(store, "inc", 2)
    assert all(new[k] == v for k, v in old.items())  # old samples untouched
    ds = DatasetStore(store, "inc")
    v1_parts = {os.stat(p).st_ino for p in ds.part_paths(1)}
    assert v1_parts <= {os.stat(p).st_ino for p in ds.part_paths(2)}  # carried by hard link, not rewritten
    # removing an annotation row removes its sample, without re-decoding anything
    csv_path = os.path.join(src, "annotations", "oidv6-train-annotations-bbox.csv")
    lines = open(csv_path).read().splitlines()
    open(csv_path, "w").write("\n".join(lines[:1] + lines[2:]) + "\n")
    v3 = refresh_in_process(src, "inc", store, CFG4)
    assert v3["version"] == 3 and v3["samples_total"] == v2["samples_total"] - 1
    assert v3["samples_new"] == 0 and v3["throughput"]["samples_built"] == 0
    assert set(_content(store, "inc", 3)) < set(new)
    # readers of older versions are unaffected
    assert _content(store, "inc", 1) == old


def test_changed_image_bytes_rebuild_its_samples(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=4, real=False)
    refresh_in_process(src, "chg", store)
    img_dir = os.path.join(src, "images", "train_0")
    victim = sorted(os.listdir(img_dir))[0]
    from PIL import Image

    Image.open(os.path.join(img_dir, victim)).rotate(180).save(os.path.join(img_dir, victim), quality=80)
    s = refresh_in_process(src, "chg", store)
    n_victim = sum(1 for k in _content(store, "chg", 1) if k.startswith(victim[:-4]))
    assert s["version"] == 2 and s["samples_new"] == n_victim > 0
    assert s["samples_total"] == len(_content(store, "chg", 1))


def test_a_local_pool_makes_the_same_version_as_one_process(tmp_path):
    src = str(tmp_path / "src")
    good_tree(src, n=4, real=False)
    lines: list[str] = []
    one = refresh_in_process(src, "p", str(tmp_path / "one"), CurationConfig(samples_per_shard=2))
    pool = refresh_in_process(
        src, "p", str(tmp_path / "pool"), CurationConfig(samples_per_shard=2), workers=2, log=lines.append
    )
    assert pool["samples_total"] == one["samples_total"] > 0 and pool["throughput"]["workers"] == 2
    assert _content(str(tmp_path / "one"), "p") == _content(str(tmp_path / "pool"), "p")
    assert len(lines) == pool["throughput"]["shards_built"] and "samples/s wall" in lines[-1]
