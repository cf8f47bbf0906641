"""Pair ingest as library steps: plan, build shards, commit a version (the same contract as `refresh`).

    plan = plan_pairs(source, artist, trigger)        # data/pairs_source.py, fails fast on structure
    units = make_units(plan.jobs, pairs_per_shard)    # data/pairs_build.py
    stats = [build_pairs_unit(u, store, dataset) ...] # in parallel under Prefect
    summary = commit_pairs_version(ds, plan, stats, run_id)

A version is the set of its shards (content-addressed) plus its quarantine. If that content equals
the latest version's, nothing is written: reruns on unchanged inputs are no-ops.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import Counter

import pyarrow as pa
from doodleflow.data.errors import InputError
from doodleflow.data.pairs_build import build_pairs_unit, make_units
from doodleflow.data.pairs_schema import (
    PAIR_INPUTS_SCHEMA,
    PAIRS_BUILDER_VERSION,
    PAIRS_SCHEMA_VERSION,
    parquet_bytes,
    quarantine_table,
)
from doodleflow.data.pairs_source import PairPlan, plan_pairs
from doodleflow.data.store import DatasetStore

KIND = "photodoodle-pairs"


def content_hash(files: list[dict], quarantine: pa.Table) -> str:
    h = hashlib.sha256()
    for sha in sorted(f["sha256"] for f in files):  # names follow input fingerprints, content does not
        h.update(sha.encode())
    h.update(hashlib.sha256(parquet_bytes(quarantine)).digest())
    return h.hexdigest()


def _inputs_table(plan: PairPlan) -> pa.Table:
    rows = [
        {
            "pair_id": j.pair_id,
            "source_uri": j.source_uri,
            "target_uri": j.target_uri,
            "fingerprint": j.fingerprint,
        }
        for j in plan.jobs
    ]
    return pa.Table.from_pylist(rows, schema=PAIR_INPUTS_SCHEMA)


def artist_counts(stats: list[dict]) -> dict[str, int]:
    return dict(sorted(sum((Counter(s.get("artists", {})) for s in stats), Counter()).items()))


def _summary(
    ds: DatasetStore,
    version: int,
    created: bool,
    rows: int,
    quarantine: pa.Table,
    plan: PairPlan,
    stats: list[dict],
) -> dict:
    reasons = dict(sorted(Counter(quarantine["reason"].to_pylist()).items()))
    return {
        "dataset": ds.name,
        "store": ds.store_uri,
        "version": version,
        "created": created,
        "path": ds.uri(ds.version_path(version)),
        "pairs_total": rows,
        "quarantined": reasons,
        "artists": artist_counts(stats),
        "triggers": plan.inputs.get("triggers", {}),
        "layout": plan.inputs.get("layout"),
    }


def commit_pairs_version(ds: DatasetStore, plan: PairPlan, unit_stats: list[dict], run_id: str) -> dict:
    """Write the new version, or find that the latest already holds exactly this content."""
    quarantine = quarantine_table(plan.quarantine + [q for s in unit_stats for q in s["quarantined"]])
    files = sorted(
        (
            {
                "path": f"part-{s['key']}.parquet",
                "rows": s["rows"],
                "bytes": s["bytes"],
                "sha256": s["sha256"],
            }
            for s in unit_stats
            if s["rows"]
        ),
        key=lambda f: f["path"],
    )
    total = sum(f["rows"] for f in files)
    if total == 0:
        reasons = dict(Counter(quarantine["reason"].to_pylist()))
        raise InputError(
            f"{plan.inputs.get('source')}: every pair was quarantined ({reasons}); no version written"
        )
    digest = content_hash(files, quarantine)
    prev = ds.latest()
    if prev is not None and ds.manifest(prev).get("content_hash") == digest:
        return _summary(ds, prev, False, total, quarantine, plan, unit_stats)
    version = ds.claim_next_version(run_id)
    for f in files:
        ds.place_file(version, ds.shard_path(f["path"][len("part-") : -len(".parquet")]), f["path"])
    side = [
        ds.write_table(version, "_inputs.parquet", _inputs_table(plan)),
        ds.write_table(version, "_quarantine.parquet", quarantine),
    ]
    manifest = {
        "format": f"doodleflow-dataset/{PAIRS_SCHEMA_VERSION}",
        "kind": KIND,
        "dataset": ds.name,
        "version": version,
        "parent": prev,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "builder_version": PAIRS_BUILDER_VERSION,
        "source": plan.inputs.get("source"),
        "inputs": plan.inputs,
        "files": files,
        "side_tables": side,
        "rows_total": total,
        "artists": artist_counts(unit_stats),
        "quarantined": dict(sorted(Counter(quarantine["reason"].to_pylist()).items())),
        "content_hash": digest,
    }
    ds.commit(version, manifest)
    return _summary(ds, version, True, total, quarantine, plan, unit_stats)


def ingest_pairs(
    source: str,
    dataset: str,
    store: str,
    artist: str | None = None,
    trigger: str | None = None,
    pairs_per_shard: int = 64,
    run_id: str | None = None,
) -> dict:
    """All steps in this process (tests, scripts); the Prefect flow runs the same steps as tasks."""
    ds = DatasetStore(store, dataset)
    plan = plan_pairs(source, artist, trigger)
    stats = [build_pairs_unit(u, store, dataset) for u in make_units(plan.jobs, pairs_per_shard)]
    return commit_pairs_version(ds, plan, stats, run_id or f"local-{uuid.uuid4().hex[:12]}")
