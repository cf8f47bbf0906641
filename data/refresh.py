"""A refresh, as library steps: diff the input plan against the latest version, then commit.

    plan, diff, units = plan_refresh(source, images, cfg, store, dataset, plan_path)
        # plan_inputs (data/plan.py), diff_with_latest: what is new, what carries over; make_units
        # (data/units.py) writes the new jobs as the units table in the plan folder: units are references
    stats = [build_unit(u, ...) for u in units]    # data/shard.py, in parallel; each reads its own rows
    summary = commit_version(ds, cfg, plan, diff, stats, run_id)   # data/commit.py does the writing

`refresh_in_process` runs these steps without Prefect (sequentially or in a local process pool); the
`dataset-refresh` flow (flows/dataset_refresh.py) runs the same steps as Prefect tasks.

A sample carries over when its id is still planned and its image's fingerprint is unchanged.
Samples of changed or removed inputs disappear from the new version without re-reading any pixels
(their shards are rewritten without them).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from doodleflow.data.boxes import QUARANTINE_COLUMNS
from doodleflow.data.builder import BUILDER_VERSION
from doodleflow.data.commit import Draft, Heldout, Part, commit_draft
from doodleflow.data.config import CurationConfig
from doodleflow.data.local_build import build_locally
from doodleflow.data.plan import InputPlan, plan_inputs
from doodleflow.data.report import throughput
from doodleflow.data.schema import INPUTS_SCHEMA, QUARANTINE_SCHEMA, SCHEMA_VERSION
from doodleflow.data.shard import build_unit
from doodleflow.data.snapshot import record_snapshot, take_snapshot, unchanged_summary
from doodleflow.data.store import DatasetStore
from doodleflow.data.units import WorkUnit, drop_plan_folder, make_units, new_plan_folder, sweep_plans

KIND = "pbe-triples"


@dataclass
class Diff:
    previous: int | None
    new_jobs: pd.DataFrame
    carry: list[dict] = field(default_factory=list)  # {"src", "name", "keep": None | set of sample ids}
    carried_quarantine: list[dict] = field(default_factory=list)
    carried_dropped: list[dict] = field(default_factory=list)


def _valid_ids(ds: DatasetStore, prev: int, plan: InputPlan) -> pa.Array:
    """Sample ids of the planned jobs whose image is unchanged since `prev` (Arrow: at full scale
    these are ~11M ids, which as a Python set would cost seconds and gigabytes)."""
    old = ds.read_table(prev, name="_inputs.parquet").to_pandas()
    old_fp = pd.Series(old["fingerprint"].to_numpy(), index=old["image_id"].to_numpy())
    same = plan.jobs["image_id"].map(old_fp) == plan.jobs["fingerprint"]
    return pa.array(plan.jobs.loc[same, "sample_id"], pa.string())


def _part_ids(ds: DatasetStore, paths: list[str]) -> tuple[pa.Array, np.ndarray]:
    """Every sample id of the previous version's parts, in part order, and where each part's ids
    start (`bounds[i]:bounds[i + 1]` are part i's)."""
    ids = []
    for path in paths:
        with ds.fs.open(path, "rb") as fh:
            ids.append(pq.read_table(fh, columns=["sample_id"]).column(0).combine_chunks())
    bounds = np.cumsum([0, *(len(c) for c in ids)])
    return (pa.concat_arrays(ids) if ids else pa.array([], pa.string())), bounds


def still_valid(ids: pa.Array, bounds: np.ndarray, valid: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Which old ids are still valid (one bool each) and how many per part (`bounds` as `_part_ids`)."""
    hit = pc.is_in(ids, value_set=valid).to_numpy(zero_copy_only=False)
    hits_before = np.concatenate(([0], np.cumsum(hit)))
    return hit, hits_before[bounds[1:]] - hits_before[bounds[:-1]]


def part_keep(
    ids: pa.Array, bounds: np.ndarray, hit: np.ndarray, kept: np.ndarray, i: int
) -> set[str] | None:
    """None when part i carries over whole; else the ids of its rows that are still valid (the part
    is rewritten without the others). `hit` and `kept` are `still_valid`'s."""
    a, b = bounds[i], bounds[i + 1]
    if kept[i] == b - a:
        return None
    return set(ids.slice(a, b - a).filter(pa.array(hit[a:b])).to_pylist())


def diff_with_latest(ds: DatasetStore, plan: InputPlan) -> Diff:
    """What carries over from the latest version (whole parts, or parts less the rows that left) and
    which planned jobs are new. Columnar: one hash set of the valid ids, one lookup of every old id."""
    prev = ds.latest()
    if prev is None:
        return Diff(None, plan.jobs)
    valid = _valid_ids(ds, prev, plan)
    diff = Diff(prev, plan.jobs)
    files, paths = ds.manifest(prev)["files"], ds.part_paths(prev)
    ids, bounds = _part_ids(ds, paths)
    hit, kept = still_valid(ids, bounds, valid)
    done = [ids.filter(pa.array(hit))]
    for i, (f, path) in enumerate(zip(files, paths, strict=True)):
        if not kept[i]:
            continue
        diff.carry.append(
            {
                "src": path,
                "name": f["path"],
                "keep": part_keep(ids, bounds, hit, kept, i),
                "rows": int(kept[i]),
                "sha256": f["sha256"],
                "bytes": f["bytes"],
            }
        )
    for table, out in (
        ("_quarantine.parquet", diff.carried_quarantine),
        ("_dropped.parquet", diff.carried_dropped),
    ):
        t = ds.read_table(prev, name=table)
        t = t.filter(pc.is_in(t["sample_id"], value_set=valid))  # build-time rejects only
        out += t.to_pylist()
        done.append(t["sample_id"].combine_chunks().cast(pa.string()))
    seen = pa.concat_arrays(done)
    new = ~pc.is_in(pa.array(plan.jobs["sample_id"], pa.string()), value_set=seen).to_numpy(
        zero_copy_only=False
    )
    diff.new_jobs = plan.jobs[new].reset_index(drop=True)
    return diff


def _rejects(
    plan_q: pd.DataFrame | None, carried: list[dict], unit_stats: list[dict], key: str
) -> pd.DataFrame:
    rows = carried + [r for s in unit_stats for r in s[key]]
    parts = [pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)]
    if plan_q is not None:
        parts.insert(0, plan_q)
    df = pd.concat(parts, ignore_index=True) if rows or plan_q is not None else parts[0]
    df["line"] = df["line"].fillna(0).astype("int64")
    return (
        df[QUARANTINE_COLUMNS]
        .fillna("")
        .sort_values(["reason", "image_id", "sample_id", "line"])
        .reset_index(drop=True)
    )


def _counts(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(Counter(df["reason"]).items())}


def _parts(ds: DatasetStore, diff: Diff, unit_stats: list[dict]) -> list[Part]:
    """Carried parts (whole, or to be rewritten without the rows that left) and the new shards."""
    parts = [
        Part(
            c["src"],
            c["name"],
            c["rows"],
            c["bytes"],
            c["sha256"],
            None if c["keep"] is None else frozenset(c["keep"]),
        )
        for c in diff.carry
    ]
    parts += [
        Part(ds.shard_path(s["key"]), f"part-{s['key']}.parquet", s["rows"], s["bytes"], s["sha256"])
        for s in unit_stats
        if s["rows"]
    ]
    return parts


def draft_version(
    ds: DatasetStore, cfg: CurationConfig, plan: InputPlan, diff: Diff, unit_stats: list[dict], source: str
) -> Draft:
    """What the new version of a triples dataset holds; `commit_draft` (data/commit.py) writes it."""
    quarantine = _rejects(plan.quarantine, diff.carried_quarantine, unit_stats, "quarantined")
    dropped_rows = _rejects(None, diff.carried_dropped, unit_stats, "dropped")
    dropped = dict(Counter(plan.triage.dropped) + Counter(_counts(dropped_rows)))
    images = plan.images[["image_id", "uri", "fingerprint"]]
    return Draft(
        kind=KIND,
        format=f"doodleflow-dataset/{SCHEMA_VERSION}",
        builder_version=BUILDER_VERSION,
        id_column="sample_id",
        previous=diff.previous,
        parts=_parts(ds, diff, unit_stats),
        side_tables={
            "_inputs.parquet": pa.Table.from_pandas(images, INPUTS_SCHEMA, preserve_index=False),
            "_quarantine.parquet": pa.Table.from_pandas(quarantine, QUARANTINE_SCHEMA, preserve_index=False),
            "_dropped.parquet": pa.Table.from_pandas(dropped_rows, QUARANTINE_SCHEMA, preserve_index=False),
            "_absent_images.parquet": plan.absent,  # image_id, boxes: what a downloader should fetch
        },
        rejects=[quarantine, dropped_rows, plan.absent],  # empty absent adds nothing to the hash
        heldout=Heldout("image_id", cfg.heldout_fraction, cfg.seed, "images", "samples"),
        fields={
            "config": cfg.to_dict(),
            "config_hash": cfg.content_hash(),
            "source": source,
            "inputs": plan.inputs,
            "samples_new": sum(s["rows"] for s in unit_stats),
            "boxes_kept": plan.boxes_kept,
            "dropped": dict(sorted(dropped.items())),
            "quarantined": _counts(quarantine),
        },
        row_group_size=cfg.row_group_size,
    )


def commit_version(
    ds: DatasetStore,
    cfg: CurationConfig,
    plan: InputPlan,
    diff: Diff,
    unit_stats: list[dict],
    run_id: str,
    source: str,
) -> dict:
    """Write the new version (or find that nothing changed) and return the refresh summary."""
    draft = draft_version(ds, cfg, plan, diff, unit_stats, source)
    done = commit_draft(ds, draft, run_id)
    record_snapshot(ds, plan.inputs.get("snapshot"), done.version)  # the next unchanged rerun skips
    f = draft.fields
    return {
        "dataset": ds.name,
        "store": ds.store_uri,
        "boxes_kept": f["boxes_kept"],
        "dropped": f["dropped"],
        "quarantined": f["quarantined"],
        "version": done.version,
        "created": done.created,
        "path": ds.uri(ds.version_path(done.version)),
        "samples_total": done.manifest["rows_total"],
        "samples_new": f["samples_new"] if done.created else 0,
        "images_absent": plan.inputs.get("images_absent", 0),
        "warnings": plan.warnings,
    }


def plan_refresh(
    source: str,
    images: str | None,
    cfg: CurationConfig,
    store_uri: str,
    dataset: str,
    plan_path: str,
) -> tuple[InputPlan, Diff, list[WorkUnit]]:
    """Read and validate every input (fails fast on structural errors), remove what a dead run left
    in the store (temporary files, stale plans), then diff with the latest version and cut the new work
    into units, written as the units table under the plan folder `plan_path` (`new_plan_folder`,
    data/units.py). The units refer to that table: the caller drops the folder once every unit is
    built and committed (`drop_plan_folder`)."""
    ds = DatasetStore(store_uri, dataset)
    snap = take_snapshot(source, images, cfg)  # file sizes/mtimes and the images listing: no parse
    if (same := unchanged_summary(ds, snap.digest)) is not None:
        return InputPlan.skipped(same), Diff(same["version"], pd.DataFrame()), []
    plan = plan_inputs(source, images, cfg, snapshot=snap, store=ds)
    ds.sweep_temporary()
    sweep_plans(ds)
    diff = diff_with_latest(ds, plan)
    return plan, diff, make_units(diff.new_jobs, cfg, ds.fs, plan_path)


def refresh_in_process(
    source: str,
    dataset: str,
    store: str,
    cfg: CurationConfig | None = None,
    images: str | None = None,
    workers: int = 1,
    run_id: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """A whole refresh without Prefect: plan, build shards (here, or in a pool of `workers` local
    processes), commit. The same summary as the flow's, throughput included. The plan folder (the
    units table) is removed at the end, failed or not: a rerun plans again into a new one."""
    cfg = cfg or CurationConfig()
    t0 = time.perf_counter()
    ds = DatasetStore(store, dataset)
    path = new_plan_folder(ds)
    try:
        plan, diff, units = plan_refresh(source, images, cfg, store, dataset, path)
        if plan.unchanged is not None:
            return plan.unchanged
        total = sum(u.n_samples for u in units)
        stats = build_locally(build_unit, units, (cfg, store, dataset), total, workers, log)
        run_id = run_id or f"local-{uuid.uuid4().hex[:12]}"
        summary = commit_version(ds, cfg, plan, diff, stats, run_id, source)
    finally:
        drop_plan_folder(ds, path)
    summary["throughput"] = throughput(stats, time.perf_counter() - t0, workers)
    return summary
