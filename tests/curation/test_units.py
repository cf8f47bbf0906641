"""Work units by reference (data/units.py): the same cut, keys and jobs as the per-object planner they
replace (its code is the reference, frozen in bench/units.py), a units table whose unit reads are one
row group, references whose size does not grow with the jobs, and a plan folder that lives exactly as
long as the builds need it."""

from __future__ import annotations

import os
import pickle
import time

import pyarrow.parquet as pq
import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
from doodleflow.data.plan_ref import PlanRef
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.rng import sample_seed
from doodleflow.data.shard import build_unit
from doodleflow.data.store import DatasetStore
from doodleflow.data.units import (
    UNITS_PER_FILE,
    UNITS_PER_ROW_GROUP,
    _row_groups,
    make_units,
    new_plan_folder,
    read_unit,
    sweep_plans,
)
from doodleflow.infra.errors import NotFoundError

from bench.units import legacy_make_units, synth_jobs
from tests.curation.trees import add_bad_inputs, good_tree


def _same_as_legacy(jobs, cfg, tmp_path, legacy_jobs=None) -> list:
    ds = DatasetStore(str(tmp_path / "store"), "u")
    units = make_units(jobs, cfg, ds.fs, new_plan_folder(ds))
    old = legacy_make_units(jobs if legacy_jobs is None else legacy_jobs, cfg)
    assert [u.key for u in units] == [u.key for u in old]
    assert [u.index for u in units] == list(range(len(old)))
    for new, ref in zip(units, old, strict=True):
        assert (new.n_samples, new.n_images) == (ref.n_samples, len(ref.images))
        assert read_unit(ds.fs, new) == list(ref.images)  # every field, floats and ints included
    return units


@pytest.mark.parametrize(
    ("variants", "shuffle", "per_shard"),
    [(1, False, 512), (2, True, 37), (1, False, 1), (1, True, 100_000)],
)
def test_keys_cut_and_jobs_equal_the_per_object_planner(tmp_path, variants, shuffle, per_shard):
    """OpenImages-like frames (long tail of boxes per image, planner dtypes): in the planner's order and
    shuffled, one unit per image, one unit for everything."""
    jobs = synth_jobs(2500, seed=variants, variants=variants, shuffle=shuffle)
    units = _same_as_legacy(jobs, CurationConfig(variants=variants, samples_per_shard=per_shard), tmp_path)
    assert sum(u.n_samples for u in units) == len(jobs)
    if per_shard == 1:
        assert len(units) == 2500


def test_a_real_plan_cuts_like_the_per_object_planner(tmp_path):
    src = str(tmp_path / "src")
    good_tree(src, n=20)
    add_bad_inputs(src)
    cfg = CurationConfig(variants=2, samples_per_shard=5)
    jobs = plan_inputs(src, None, cfg).jobs
    # The planner no longer derives seeds (make_units does, for the jobs it cuts); the per-object
    # planner got them from it: each job's sample_seed.
    assert "seed" not in jobs.columns
    legacy = jobs.assign(
        seed=[
            sample_seed(cfg.seed, i, k, v)
            for i, k, v in zip(jobs["image_id"], jobs["box_key"], jobs["variant"], strict=True)
        ]
    )
    assert len(_same_as_legacy(jobs, cfg, tmp_path, legacy)) > 3


def test_the_units_table_is_in_unit_order_a_unit_read_is_one_row_group(tmp_path):
    ds = DatasetStore(str(tmp_path / "store"), "u")
    jobs = synth_jobs(3000, seed=4, shuffle=True)
    plan = new_plan_folder(ds)
    units = make_units(jobs, CurationConfig(samples_per_shard=64), ds.fs, plan)
    files = sorted(os.listdir(os.path.join(plan, "units")))
    assert len(files) == -(-len(units) // UNITS_PER_FILE)
    t = pq.read_table(os.path.join(plan, "units")).to_pandas()
    assert list(t["sample_id"].sort_values()) == list(jobs["sample_id"].sort_values())  # each job once
    assert t.equals(t.sort_values(["unit", "image_id", "sample_id"]).reset_index(drop=True))
    for u in units:
        md = pq.ParquetFile(u.path).metadata
        first = u.index - u.index % UNITS_PER_ROW_GROUP  # row groups hold whole units, in order
        group = (u.index % UNITS_PER_FILE) // UNITS_PER_ROW_GROUP
        assert _row_groups(md, u.index) == [group]  # a read touches one row group
        held = units[first : min(first + UNITS_PER_ROW_GROUP, len(units))]
        assert md.row_group(group).num_rows == sum(v.n_samples for v in held)


def test_references_do_not_grow_with_the_jobs(tmp_path):
    """What the plan task returns (PlanRef + units) is pickled by Prefect: ~100 bytes a unit whatever
    its size, where the per-object units carried every job."""
    ds = DatasetStore(str(tmp_path / "store"), "u")
    plan = new_plan_folder(ds)
    small, big = synth_jobs(200, seed=1), synth_jobs(4000, seed=1)
    cfg = CurationConfig(samples_per_shard=100_000)  # one unit each
    sizes = [len(pickle.dumps((PlanRef(plan, None), make_units(j, cfg, ds.fs, plan)))) for j in (small, big)]
    assert sizes[1] - sizes[0] <= 8 and sizes[1] < 1000  # a few bytes: n_samples is a wider int
    assert len(pickle.dumps(legacy_make_units(big, cfg))) > 1000 * sizes[1]


def test_no_jobs_no_units_no_files(tmp_path):
    ds = DatasetStore(str(tmp_path / "store"), "u")
    plan = new_plan_folder(ds)
    assert make_units(synth_jobs(10).iloc[:0], CurationConfig(), ds.fs, plan) == []
    assert not os.path.exists(plan)


def test_a_built_unit_needs_no_table_and_a_gone_plan_is_one_error(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=3, real=False)
    cfg = CurationConfig(samples_per_shard=100)
    ds = DatasetStore(store, "u")
    plan = new_plan_folder(ds)
    (unit,) = make_units(plan_inputs(src, None, cfg).jobs, cfg, ds.fs, plan)
    first = build_unit(unit, cfg, store, "u")
    assert first["rows"] == unit.n_samples and first["images"] == unit.n_images == 3
    ds.fs.rm(plan, recursive=True)
    assert build_unit(unit, cfg, store, "u")["reused"]  # a rerun finds the shard by key, reads nothing
    ds.fs.rm(ds.shard_path(unit.key))
    ds.fs.rm(ds.shard_path(unit.key).removesuffix(".parquet") + ".json")
    with pytest.raises(NotFoundError, match="plan .* is gone"):
        build_unit(unit, cfg, store, "u")


def test_in_process_refresh_removes_its_plan_folder(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=4, real=False)
    s = refresh_in_process(src, "u", store, CurationConfig(samples_per_shard=2), workers=2)
    assert s["version"] == 1 and s["samples_new"] > 0
    plans = os.path.join(store, "datasets", "u", "plans")
    assert not os.path.exists(plans) or os.listdir(plans) == []


def test_stale_plans_are_swept_fresh_ones_kept(tmp_path):
    ds = DatasetStore(str(tmp_path / "store"), "u")
    fresh = new_plan_folder(ds)
    stale = os.path.join(os.path.dirname(fresh), f"{int(time.time()) - 2 * 86400}-deadbeef0000")
    for p in (fresh, stale):
        os.makedirs(os.path.join(p, "units"))
    sweep_plans(ds)
    assert os.path.exists(fresh) and not os.path.exists(stale)
