"""A refresh, as library steps: diff the input plan against the latest version, then commit.

    plan = plan_inputs(...)                       # data/plan.py
    diff = diff_with_latest(ds, plan)              # what is new, what carries over
    units = make_units(diff.new_jobs, cfg)         # data/plan.py
    stats = [build_unit(u, ...) for u in units]    # data/shard.py, in parallel
    summary = commit_version(ds, cfg, plan, diff, stats, run_id)

A sample carries over when its id is still planned and its image's fingerprint is unchanged.
Samples of changed or removed inputs disappear from the new version without re-reading any pixels
(their shards are rewritten without them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from doodleflow.data.boxes import QUARANTINE_COLUMNS
from doodleflow.data.builder import BUILDER_VERSION
from doodleflow.data.config import CurationConfig
from doodleflow.data.faults import failpoint
from doodleflow.data.fsutil import atomic_write, join
from doodleflow.data.plan import InputPlan
from doodleflow.data.schema import INPUTS_SCHEMA, QUARANTINE_SCHEMA, SCHEMA_VERSION, parquet_bytes
from doodleflow.data.split import heldout_split
from doodleflow.data.store import DatasetStore


@dataclass
class Diff:
    previous: int | None
    new_jobs: pd.DataFrame
    carry: list[dict] = field(default_factory=list)  # {"src", "name", "keep": None | set of sample ids}
    carried_quarantine: list[dict] = field(default_factory=list)
    carried_dropped: list[dict] = field(default_factory=list)


def _valid_ids(ds: DatasetStore, prev: int, plan: InputPlan) -> tuple[set[str], dict[str, str]]:
    """Sample ids of the planned jobs whose image is unchanged since `prev`."""
    old = ds.read_table(prev, name="_inputs.parquet").to_pandas()
    old_fp = dict(zip(old["image_id"], old["fingerprint"], strict=True))
    same = plan.jobs["image_id"].map(old_fp) == plan.jobs["fingerprint"]
    return set(plan.jobs.loc[same, "sample_id"]), old_fp


def diff_with_latest(ds: DatasetStore, plan: InputPlan) -> Diff:
    prev = ds.latest()
    if prev is None:
        return Diff(None, plan.jobs)
    valid, _ = _valid_ids(ds, prev, plan)
    diff = Diff(prev, plan.jobs)
    done: set[str] = set()
    for f, path in zip(ds.manifest(prev)["files"], ds.part_paths(prev), strict=True):
        with ds.fs.open(path, "rb") as fh:
            ids = set(pq.read_table(fh, columns=["sample_id"]).column(0).to_pylist())
        keep = ids & valid
        done |= keep
        if keep:
            diff.carry.append(
                {
                    "src": path,
                    "name": f["path"],
                    "keep": None if keep == ids else keep,
                    "rows": len(keep),
                    "sha256": f["sha256"],
                    "bytes": f["bytes"],
                }
            )
    for table, out in (
        ("_quarantine.parquet", diff.carried_quarantine),
        ("_dropped.parquet", diff.carried_dropped),
    ):
        rows = ds.read_table(prev, name=table).to_pylist()
        kept = [r for r in rows if r["sample_id"] and r["sample_id"] in valid]  # build-time rejects only
        out += kept
        done |= {r["sample_id"] for r in kept}
    diff.new_jobs = plan.jobs[~plan.jobs["sample_id"].isin(done)].reset_index(drop=True)
    return diff


def _rewrite_without(ds: DatasetStore, version: int, carry: dict) -> dict:
    """A carried part that lost rows: write the surviving rows as a new part (no pixel work)."""
    with ds.fs.open(carry["src"], "rb") as fh:
        t = pq.read_table(fh)
    t = t.filter(pc.is_in(t["sample_id"], pa.array(sorted(carry["keep"]))))
    data = parquet_bytes(t)
    sha = hashlib.sha256(data).hexdigest()
    name = f"part-{sha[:24]}.parquet"
    atomic_write(ds.fs, join(ds.version_path(version), name), data)
    return {"path": name, "rows": t.num_rows, "bytes": len(data), "sha256": sha}


def _place_parts(ds: DatasetStore, version: int, diff: Diff, unit_stats: list[dict]) -> list[dict]:
    files = []
    for c in diff.carry:
        if c["keep"] is None:
            ds.place_file(version, c["src"], c["name"])
            files.append({"path": c["name"], "rows": c["rows"], "bytes": c["bytes"], "sha256": c["sha256"]})
        else:
            files.append(_rewrite_without(ds, version, c))
    for s in unit_stats:
        if s["rows"]:
            name = f"part-{s['key']}.parquet"
            ds.place_file(version, ds.shard_path(s["key"]), name)
            files.append({"path": name, "rows": s["rows"], "bytes": s["bytes"], "sha256": s["sha256"]})
    return sorted(files, key=lambda f: f["path"])


def content_hash(files: list[dict], quarantine: pd.DataFrame, dropped: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["sha256"]):
        h.update(f["sha256"].encode())
    for df in (quarantine, dropped):
        h.update(
            pd.util.hash_pandas_object(df.sort_values(list(df.columns)), index=False).to_numpy().tobytes()
        )
    return h.hexdigest()


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


def _prospective_hash(diff: Diff, unit_stats: list[dict], q: pd.DataFrame, d: pd.DataFrame) -> str | None:
    """The content hash the new version would have, or None if rows were removed (always a change)."""
    if any(c["keep"] is not None for c in diff.carry):
        return None
    files = [{"sha256": c["sha256"]} for c in diff.carry] + [
        {"sha256": s["sha256"]} for s in unit_stats if s["rows"]
    ]
    return content_hash(files, q, d)


def _heldout(ds: DatasetStore, version: int, files: list[dict], cfg: CurationConfig) -> dict:
    """The evaluation split: a pure function of image id, fraction and seed (data/split.py)."""
    ids = []
    for f in files:
        with ds.fs.open(join(ds.version_path(version), f["path"]), "rb") as fh:
            ids += pq.read_table(fh, columns=["image_id"])["image_id"].to_pylist()
    held = heldout_split(set(ids), cfg.heldout_fraction, cfg.seed)
    return {
        "method": "sha256(f'{seed}:{image_id}') < fraction * 2**256",
        "fraction": cfg.heldout_fraction,
        "seed": cfg.seed,
        "images": len(held),
        "samples": sum(i in held for i in ids),
    }


def _unchanged(ds: DatasetStore, version: int, base: dict) -> dict:
    m = ds.manifest(version)
    return {
        **base,
        "version": version,
        "created": False,
        "path": ds.uri(ds.version_path(version)),
        "samples_total": m["rows_total"],
        "samples_new": 0,
    }


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
    quarantine = _rejects(plan.quarantine, diff.carried_quarantine, unit_stats, "quarantined")
    dropped_rows = _rejects(None, diff.carried_dropped, unit_stats, "dropped")
    dropped = dict(Counter(plan.triage.dropped) + Counter(_counts(dropped_rows)))
    base = {
        "dataset": ds.name,
        "store": ds.store_uri,
        "boxes_kept": len(plan.triage.kept),
        "dropped": dict(sorted(dropped.items())),
        "quarantined": _counts(quarantine),
    }
    new_rows = sum(s["rows"] for s in unit_stats)
    prospective = _prospective_hash(diff, unit_stats, quarantine, dropped_rows)
    if (
        diff.previous is not None
        and new_rows == 0
        and prospective == ds.manifest(diff.previous)["content_hash"]
    ):
        return _unchanged(ds, diff.previous, base)
    version = ds.claim_next_version(run_id)
    # A concurrent refresh may have claimed a lower number: let it commit first, then skip ours if it
    # made exactly what we would (two refreshes of the same inputs give one version, not two).
    ds.wait_for_earlier_claims(version)
    latest = ds.latest()
    if latest is not None and latest != diff.previous and prospective == ds.manifest(latest)["content_hash"]:
        ds.release_claim(version)
        return _unchanged(ds, latest, base)
    files = _place_parts(ds, version, diff, unit_stats)
    side = [
        ds.write_table(
            version,
            "_inputs.parquet",
            pa.Table.from_pandas(
                plan.images[["image_id", "uri", "fingerprint"]], INPUTS_SCHEMA, preserve_index=False
            ),
        ),
        ds.write_table(
            version,
            "_quarantine.parquet",
            pa.Table.from_pandas(quarantine, QUARANTINE_SCHEMA, preserve_index=False),
        ),
        ds.write_table(
            version,
            "_dropped.parquet",
            pa.Table.from_pandas(dropped_rows, QUARANTINE_SCHEMA, preserve_index=False),
        ),
    ]
    failpoint("refresh.before_manifest")
    total = sum(f["rows"] for f in files)
    manifest = {
        "format": f"doodleflow-dataset/{SCHEMA_VERSION}",
        "kind": "pbe-triples",
        "dataset": ds.name,
        "version": version,
        "parent": diff.previous,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        "config_hash": cfg.content_hash(),
        "builder_version": BUILDER_VERSION,
        "source": source,
        "inputs": plan.inputs,
        "files": files,
        "side_tables": side,
        "rows_total": total,
        "samples_new": new_rows,
        "boxes_kept": base["boxes_kept"],
        "dropped": base["dropped"],
        "quarantined": base["quarantined"],
        "content_hash": content_hash(files, quarantine, dropped_rows),
        "heldout": _heldout(ds, version, files, cfg),
    }
    ds.commit(version, manifest)
    return {
        **base,
        "version": version,
        "created": True,
        "path": ds.uri(ds.version_path(version)),
        "samples_total": total,
        "samples_new": new_rows,
    }
