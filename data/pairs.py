"""Pair ingest as library steps: plan, build shards, commit a version (the same contract as `refresh`).

    plan, units = plan_ingest(source, ..., store, dataset)  # data/pairs_source.py, fails fast on structure
    stats = [build_pairs_unit(u, store, dataset) ...]     # data/pairs_build.py, in parallel
    summary = commit_pairs_version(ds, plan, stats, run_id) # data/commit.py does the writing

`ingest_pairs_in_process` runs these steps without Prefect; the `photodoodle-ingest-pairs` flow runs them as tasks.

A version is the set of its shards (content-addressed) plus its quarantine. If that content equals
the latest version's, nothing is written: reruns on unchanged inputs are no-ops.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable

import pyarrow as pa
from doodleflow.data.commit import Draft, Heldout, Part, commit_draft
from doodleflow.data.errors import InputError
from doodleflow.data.local_build import build_locally
from doodleflow.data.pairs_build import PairUnit, build_pairs_unit, make_units
from doodleflow.data.pairs_schema import (
    PAIR_INPUTS_SCHEMA,
    PAIRS_BUILDER_VERSION,
    PAIRS_ROW_GROUP_SIZE,
    PAIRS_SCHEMA_VERSION,
    quarantine_table,
)
from doodleflow.data.pairs_source import PairPlan, plan_pairs
from doodleflow.data.split import DEFAULT_FRACTION
from doodleflow.data.store import DatasetStore

KIND = "photodoodle-pairs"
# The evaluation split by pair id, as training/eval/photodoodle.py reads it (recorded in the manifest).
HELDOUT_FRACTION = DEFAULT_FRACTION
HELDOUT_SEED = 0


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


def draft_pairs_version(ds: DatasetStore, plan: PairPlan, unit_stats: list[dict]) -> Draft:
    """What the new version of a pair dataset holds; `commit_draft` (data/commit.py) writes it.
    Every unit is in the draft (unchanged units' shards are found already built), so the previous
    version is the latest one."""
    quarantine = quarantine_table(plan.quarantine + [q for s in unit_stats for q in s["quarantined"]])
    parts = [
        Part(ds.shard_path(s["key"]), f"part-{s['key']}.parquet", s["rows"], s["bytes"], s["sha256"])
        for s in unit_stats
        if s["rows"]
    ]
    if not parts:
        reasons = dict(Counter(quarantine["reason"].to_pylist()))
        raise InputError(
            f"{plan.inputs.get('source')}: every pair was quarantined ({reasons}); no version written"
        )
    return Draft(
        kind=KIND,
        format=f"doodleflow-dataset/{PAIRS_SCHEMA_VERSION}",
        builder_version=PAIRS_BUILDER_VERSION,
        id_column="pair_id",
        previous=ds.latest(),
        parts=parts,
        side_tables={"_inputs.parquet": _inputs_table(plan), "_quarantine.parquet": quarantine},
        rejects=[quarantine],
        heldout=Heldout("pair_id", HELDOUT_FRACTION, HELDOUT_SEED, "pairs"),
        fields={
            "source": plan.inputs.get("source"),
            "inputs": plan.inputs,
            "artists": artist_counts(unit_stats),
            "quarantined": dict(sorted(Counter(quarantine["reason"].to_pylist()).items())),
        },
        row_group_size=PAIRS_ROW_GROUP_SIZE,
    )


def commit_pairs_version(ds: DatasetStore, plan: PairPlan, unit_stats: list[dict], run_id: str) -> dict:
    """Write the new version, or find a committed version that already holds exactly this content."""
    draft = draft_pairs_version(ds, plan, unit_stats)
    done = commit_draft(ds, draft, run_id)
    return {
        "dataset": ds.name,
        "store": ds.store_uri,
        "version": done.version,
        "created": done.created,
        "path": ds.uri(ds.version_path(done.version)),
        "pairs_total": done.manifest["rows_total"],
        "quarantined": draft.fields["quarantined"],
        "artists": draft.fields["artists"],
        "triggers": plan.inputs.get("triggers", {}),
        "layout": plan.inputs.get("layout"),
    }


def plan_ingest(
    source: str, artist: str | None, trigger: str | None, pairs_per_shard: int, store: str, dataset: str
) -> tuple[PairPlan, list[PairUnit]]:
    """Read and validate the source's structure (fails fast), remove what a dead run left in the
    store (temporary files), list the pairs in work units."""
    plan = plan_pairs(source, artist, trigger)
    DatasetStore(store, dataset).sweep_temporary()
    return plan, make_units(plan.jobs, pairs_per_shard)


def ingest_pairs_in_process(
    source: str,
    dataset: str,
    store: str,
    artist: str | None = None,
    trigger: str | None = None,
    pairs_per_shard: int = 64,
    run_id: str | None = None,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict:
    """All steps without Prefect (tests, scripts), here or in a local process pool of `workers`; the
    Prefect flow runs the same steps as tasks."""
    plan, units = plan_ingest(source, artist, trigger, pairs_per_shard, store, dataset)
    stats = build_locally(build_pairs_unit, units, (store, dataset), len(plan.jobs), workers, log, "pairs")
    run_id = run_id or f"local-{uuid.uuid4().hex[:12]}"
    return commit_pairs_version(DatasetStore(store, dataset), plan, stats, run_id)
