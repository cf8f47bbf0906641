"""The triage cache (data/triage_cache.py): planning through it gives the same plan as triaging in
memory, cold or warm; new images reuse every entry (no parse) and match a cold plan; a changed file
is parsed alone and its old entry pruned; half-written or damaged entries are misses; S3 stores too."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from doodleflow.data.boxes import combine, triage_file
from doodleflow.data.config import BoxFilterConfig, CurationConfig
from doodleflow.data.fsutil import LEGACY_TMP_AGE
from doodleflow.data.listing import list_images
from doodleflow.data.openimages import COORDS, locate_source, read_bbox_table, read_class_descriptions
from doodleflow.data.plan import plan_inputs
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import bbox_row, write_bbox_csv
from doodleflow.data.triage_cache import STALE_WRITE_S

from bench.scale_data import TRAIN_CSV, add_photos, make_tree, present_ids
from tests.curation.trees import ABSENT_EXPECTED, BAD_EXPECTED, bad_tree

ROWS, PRESENT = 30_000, 12
VAL_CSV = "validation-annotations-bbox.csv"


def messy_tree(root: str, shuffle: bool, seed: int = 3) -> list[str]:
    """A V6 train file, sorted by ImageID or shuffled, with exact and 7th-decimal duplicates (some of
    present images), ImageIDs with spaces around them and bad coordinates; a validation file that
    shares images with it and repeats its own rows. Returns the file's ImageIDs."""
    ids = make_tree(root, ROWS, PRESENT, seed=seed)
    path = os.path.join(root, "annotations", TRAIN_CSV)
    text = dict.fromkeys(["ImageID", *COORDS], pa.string())
    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=text))
    rng = np.random.default_rng(seed)
    here = np.flatnonzero(np.isin(t["ImageID"].to_numpy(zero_copy_only=False), present_ids(ids, PRESENT)))
    dups = t.take(np.r_[rng.choice(t.num_rows, 400, replace=False), rng.choice(here, 20, replace=False)])
    xmin = dups["XMin"].to_pylist()
    near = xmin[:210] + [x + "4" for x in xmin[210:]]  # equal at 6 decimals: the same box key
    dups = dups.set_column(t.schema.get_field_index("XMin"), "XMin", pa.array(near))
    spaced = t.take(rng.choice(here, 8, replace=False))
    spaced = spaced.set_column(0, "ImageID", pa.array([f" {v} " for v in spaced["ImageID"].to_pylist()]))
    bad = t.take(rng.choice(t.num_rows, 6, replace=False))
    odd = pa.array(["nan", "0.1x", "", "1.5", "-0.2", "abc"])
    bad = bad.set_column(t.schema.get_field_index("XMin"), "XMin", odd)
    t = pa.concat_tables([t, dups, spaced, bad])
    key = np.array([v.strip() for v in t["ImageID"].to_pylist()])
    t = t.take(rng.permutation(t.num_rows) if shuffle else np.argsort(key, kind="stable"))
    pacsv.write_csv(t, path, pacsv.WriteOptions(quoting_style="none"))
    val = t.take(rng.choice(t.num_rows, 600, replace=False))
    val = pa.concat_tables([val, val.slice(0, 50)])
    pacsv.write_csv(val, os.path.join(root, "annotations", VAL_CSV), pacsv.WriteOptions(quoting_style="none"))
    return ids


def in_memory(src: str, cfg: CurationConfig):
    """The same triage without the cache: every file triaged in memory against the listing."""
    layout = locate_source(src)
    classes = read_class_descriptions(layout.class_descriptions)
    need = ("IsGroupOf",) if cfg.boxes.drop_group_of else ()
    present = list_images(layout.images_root)["image_id"].combine_chunks()
    files = [
        triage_file(read_bbox_table(u, need), classes, cfg.boxes, present, cfg.require_images)
        for u in layout.bbox_csvs
    ]
    return combine(files)


def assert_same_triage(a, b) -> None:
    pd.testing.assert_frame_equal(a.kept, b.kept)
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    assert a.dropped == b.dropped and a.absent.equals(b.absent)
    assert (a.missing is None) == (b.missing is None)
    if a.missing is not None:
        pd.testing.assert_frame_equal(a.missing, b.missing)


def assert_same_plan(a, b) -> None:
    for f in ("jobs", "images", "quarantine"):
        pd.testing.assert_frame_equal(getattr(a, f), getattr(b, f))
    assert_same_triage(a.triage, b.triage)
    assert a.absent.equals(b.absent) and a.inputs == b.inputs and a.warnings == b.warnings


def assert_file_order(rows: pd.DataFrame | None) -> bool:
    """Rows of one file keep the file's order (which duplicate is kept, which row is `missing`)."""
    if rows is None:
        return True
    file, line = ("_file", "_line") if "_file" in rows else ("file", "line")
    for _, g in rows.groupby(file, sort=False):
        assert g[line].is_monotonic_increasing and g[line].is_unique
    return True


def _rows(src: str) -> int:
    d = os.path.join(src, "annotations")
    return sum(len(open(os.path.join(d, f)).readlines()) - 1 for f in os.listdir(d) if f.endswith("bbox.csv"))


def triage_dir(store: str, name: str = "d") -> str:
    return os.path.join(store, "datasets", name, "triage")


def entry_files(store: str) -> dict[str, tuple[int, int]]:
    """Every file of every entry: (inode, mtime_ns). A rewrite changes both."""
    root = triage_dir(store)
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            st = os.stat(os.path.join(d, n))
            out[os.path.relpath(os.path.join(d, n), root)] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("require_images", [False, True])
@pytest.mark.parametrize("tree", ["bad", "sorted", "shuffled"])
def test_cached_plan_equals_the_in_memory_triage(tmp_path, tree, require_images):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    if tree == "bad":
        bad_tree(src)
    else:
        messy_tree(src, shuffle=tree == "shuffled")
    cfg = CurationConfig(require_images=require_images)
    ds = DatasetStore(store, "d")
    cold = plan_inputs(src, None, cfg, store=ds)
    assert len(os.listdir(triage_dir(store))) == 2  # one entry per annotation file
    warm = plan_inputs(src, None, cfg, store=ds)
    assert_same_plan(cold, warm)
    assert_same_plan(cold, plan_inputs(src, None, cfg))  # a temporary store: the same path
    assert_same_triage(cold.triage, in_memory(src, cfg))
    assert_file_order(cold.triage.kept) and assert_file_order(cold.triage.missing)
    # nothing lost: every annotation row is kept, quarantined, dropped or a box of an absent image
    q = cold.quarantine
    assert (
        _rows(src)
        == len(cold.triage.kept) + len(q) + sum(cold.triage.dropped.values()) + (cold.inputs["boxes_absent"])
    )
    reasons = q["reason"].value_counts().to_dict()
    if tree == "bad":  # the expectations of tests/curation/trees.py (images are not decoded here)
        expected = {k: v for k, v in BAD_EXPECTED.items() if k != "unreadable_image"}
        assert reasons == ({**expected, "missing_image": 1} if require_images else expected)
        absent = {} if require_images else ABSENT_EXPECTED
        assert dict(zip(*cold.absent.to_pydict().values(), strict=True)) == absent
        assert cold.triage.dropped == {"area_too_small": 1}
    else:
        assert min(reasons[r] for r in ("box_nan", "box_unparseable", "box_out_of_range")) >= 2
        assert cold.triage.dropped["duplicate_box"] > 300  # 420 repeats (some too small), val's own
        assert not cold.jobs["image_id"].str.contains(" ").any()  # " id " is the image id
        assert 0 < cold.jobs["image_id"].nunique() <= PRESENT and cold.jobs["sample_id"].is_unique
        assert (reasons.get("missing_image", 0) > 0) == require_images


def _straddling(store: str, absent: set[str]) -> str:
    """An absent image of the train entry whose kept rows span two row groups of kept.parquet."""
    for key in os.listdir(triage_dir(store)):
        e = os.path.join(triage_dir(store), key)
        md = pq.ParquetFile(os.path.join(e, "kept.parquet")).metadata
        bounds = np.cumsum([md.row_group(i).num_rows for i in range(md.num_row_groups)])[:-1]
        im = pq.read_table(os.path.join(e, "images.parquet")).to_pydict()
        for iid, start, rows in zip(im["image_id"], im["start"], im["rows"], strict=True):
            if iid in absent and np.any((bounds > start) & (bounds < start + rows)):
                return iid
    raise AssertionError("no image spans two row groups")


def test_new_images_reuse_every_entry_and_match_a_cold_plan(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    ids = messy_tree(src, shuffle=False)
    cfg, ds = CurationConfig(), DatasetStore(store, "d")
    first = plan_inputs(src, None, cfg, store=ds)
    before = entry_files(store)
    absent = set(first.absent["image_id"].to_pylist())
    new = list(
        dict.fromkeys([_straddling(store, absent), *(i for i in present_ids(ids, 3, 1) if i in absent)])
    )
    add_photos(src, new, split="train_new")
    again = plan_inputs(src, None, cfg, store=ds)
    assert entry_files(store) == before  # no entry rewritten: a miss always writes, so nothing parsed
    assert_same_plan(again, plan_inputs(src, None, cfg))  # = a cold plan in a temporary store
    assert set(again.jobs["image_id"]) == set(first.jobs["image_id"]) | set(new)
    assert not set(new) & set(again.absent["image_id"].to_pylist())
    assert again.absent.num_rows == first.absent.num_rows - len(new)


def test_a_changed_file_is_parsed_alone_and_its_old_entry_pruned(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    bad_tree(src)
    ds = DatasetStore(store, "d")
    plan_inputs(src, None, CurationConfig(), store=ds)
    before = entry_files(store)
    val = os.path.join(src, "annotations", VAL_CSV)
    write_bbox_csv(
        val, [bbox_row("okval0000000001", "/m/05z6w", (0.2, 0.2, 0.9, 0.9), v6=False)], append=True
    )
    plan = plan_inputs(src, None, CurationConfig(), store=ds)
    after = entry_files(store)
    kept = {k: v for k, v in after.items() if k in before}
    assert len(os.listdir(triage_dir(store))) == 2 and len(kept) == len(after) // 2  # train's only
    assert kept == {k: before[k] for k in kept}  # train's entry untouched
    assert_same_plan(plan, plan_inputs(src, None, CurationConfig()))
    # another box filter: other entries for both files, the old ones pruned
    cfg = CurationConfig(boxes=BoxFilterConfig(deny_labels=("/m/05z6w",)))
    plan = plan_inputs(src, None, cfg, store=ds)
    assert len(os.listdir(triage_dir(store))) == 2 and not set(entry_files(store)) & set(after)
    assert plan.triage.dropped["label_denied"] > 0


def test_half_written_damaged_and_foreign_entries(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    bad_tree(src)
    ds = DatasetStore(store, "d")
    ref = plan_inputs(src, None, CurationConfig(), store=ds)
    entries = sorted(os.listdir(triage_dir(store)))
    a, b = (os.path.join(triage_dir(store), k) for k in entries)
    os.remove(os.path.join(a, "meta.json"))  # a writer killed before its last file: a miss
    with open(os.path.join(b, "kept.parquet"), "r+b") as f:  # damaged bytes: a miss, too
        f.truncate(20)
    leftover = os.path.join(a, "kept.parquet.tmp-0123abcd")  # a dead writer's temporary file
    open(leftover, "wb").close()
    os.utime(leftover, (time.time() - LEGACY_TMP_AGE - 60,) * 2)
    foreign = {n: os.path.join(triage_dir(store), n) for n in ("live-writer", "dead-writer", "stale-done")}
    for p in foreign.values():
        os.makedirs(p)
        open(os.path.join(p, "kept.parquet"), "wb").close()
    open(os.path.join(foreign["stale-done"], "meta.json"), "w").write("{}")
    old = time.time() - STALE_WRITE_S - 60
    os.utime(os.path.join(foreign["dead-writer"], "kept.parquet"), (old, old))
    plan = plan_inputs(src, None, CurationConfig(), store=ds)
    assert_same_plan(plan, ref)
    assert all(os.path.exists(os.path.join(p, "meta.json")) for p in (a, b)) and not os.path.exists(leftover)
    assert sorted(os.listdir(triage_dir(store))) == sorted([*entries, "live-writer"])


def test_the_cache_on_an_s3_store(tmp_path, bucket):
    src = str(tmp_path / "src")
    bad_tree(src)
    ds = DatasetStore(bucket, "d")
    cold = plan_inputs(src, None, CurationConfig(), store=ds)
    root = f"{ds.root}/triage"
    keys = sorted(ds.fs.ls(root, detail=False))
    assert len(keys) == 2 and all(ds.fs.exists(f"{k}/meta.json") for k in keys)
    add_photos(src, ["missing00000001"], split="validation")  # the absent image arrives
    warm = plan_inputs(src, None, CurationConfig(), store=ds)
    assert sorted(ds.fs.ls(root, detail=False)) == keys
    assert_same_plan(warm, plan_inputs(src, None, CurationConfig()))
    assert warm.absent.num_rows == 0 and len(warm.jobs) == len(cold.jobs) + 1
    write_bbox_csv(
        os.path.join(src, "annotations", VAL_CSV),
        [bbox_row("okval0000000001", "/m/05z6w", (0.2, 0.2, 0.9, 0.9), v6=False)],
        append=True,
    )
    plan_inputs(src, None, CurationConfig(), store=ds)
    now = sorted(ds.fs.ls(root, detail=False))
    assert len(now) == 2 and len(set(now) & set(keys)) == 1  # validation's old entry pruned
