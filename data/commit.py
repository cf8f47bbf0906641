"""One dataset-version commit for every dataset kind (PbE triples, PhotoDoodle pairs).

A kind describes what its new version would hold as a `Draft` (its parts, side tables, reject tables,
held-out rule and its own manifest fields); `commit_draft` does the rest, the same way for all:

1. nothing changed (the draft's content hash equals the previous version's): write nothing;
2. claim the next version number (exclusive create), then wait for lower claims of live runs, so
   that concurrent runs commit in claim order; if an earlier one committed exactly this content,
   release the claim (two runs on the same inputs give one version, not two);
3. place the parts (hard links / server-side copies; parts that lost rows are rewritten without
   them), write the side tables, then the manifest last: the version exists iff its manifest does.

The failpoint `commit.before_manifest` sits between 3's files and the manifest (tests/curation/test_crash.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from doodleflow.data.faults import failpoint
from doodleflow.data.fsutil import atomic_write, join
from doodleflow.data.parquet import content_hash, parquet_bytes
from doodleflow.data.split import heldout_split
from doodleflow.data.store import DatasetStore


@dataclass(frozen=True)
class Part:
    """One part of the new version: a built shard or a part carried from an earlier version.

    `keep` = None carries the file as it is; a set keeps only those ids (the part is rewritten)."""

    src: str
    name: str
    rows: int
    bytes: int
    sha256: str
    keep: frozenset[str] | None = None

    def record(self) -> dict:
        return {"path": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class Heldout:
    """The evaluation split (data/split.py): a pure function of an id column, fraction and seed.
    `ids_key`/`rows_key` name the counts in the manifest (images/samples for triples; pairs have one
    row per id, so only `ids_key`)."""

    column: str
    fraction: float
    seed: int
    ids_key: str
    rows_key: str | None = None


@dataclass
class Draft:
    kind: str  # the manifest's "kind", e.g. "pbe-triples"
    format: str  # e.g. "doodleflow-dataset/1"
    builder_version: str
    id_column: str  # unique per row; what a part keeps when it loses rows
    previous: int | None  # the version the draft was made against (the new version's parent)
    parts: list[Part]
    side_tables: dict[str, pa.Table]  # written next to the parts, e.g. "_quarantine.parquet"
    rejects: list[pd.DataFrame | pa.Table]  # the reject tables that are part of the content
    heldout: Heldout
    fields: dict = field(default_factory=dict)  # the kind's own manifest fields
    row_group_size: int = 32

    def files(self) -> list[dict]:
        return [p.record() for p in self.parts]

    def prospective_hash(self) -> str | None:
        """The content hash the new version would have; None if a part loses rows (always a change)."""
        if any(p.keep is not None for p in self.parts):
            return None
        return content_hash(self.files(), self.rejects)


@dataclass(frozen=True)
class Committed:
    version: int
    created: bool
    manifest: dict


def _same_content(ds: DatasetStore, version: int | None, digest: str | None) -> bool:
    return version is not None and digest is not None and ds.manifest(version).get("content_hash") == digest


def commit_draft(ds: DatasetStore, draft: Draft, run_id: str) -> Committed:
    """Write the draft as a new version, or find a committed version that already holds it."""
    digest = draft.prospective_hash()
    if _same_content(ds, draft.previous, digest):
        return Committed(draft.previous, False, ds.manifest(draft.previous))
    version = ds.claim_next_version(run_id)
    # A concurrent run may have claimed a lower number: let it commit first, then skip ours if it
    # made exactly what we would.
    ds.wait_for_earlier_claims(version)
    latest = ds.latest()
    if latest != draft.previous and _same_content(ds, latest, digest):
        ds.release_claim(version)
        return Committed(latest, False, ds.manifest(latest))
    try:
        manifest = _write_version(ds, version, draft, run_id)
    except BaseException:
        # A failed write (a full disk, a lost connection) leaves no half-made version behind. A
        # killed process cannot do this: its folder stays invisible (no manifest) and unused.
        with contextlib.suppress(Exception):
            ds.release_claim(version)
        raise
    return Committed(version, True, manifest)


def _write_version(ds: DatasetStore, version: int, draft: Draft, run_id: str) -> dict:
    files = sorted((_place(ds, version, p, draft) for p in draft.parts), key=lambda f: f["path"])
    side = [ds.write_table(version, name, t) for name, t in draft.side_tables.items()]
    failpoint("commit.before_manifest")
    manifest = {
        "format": draft.format,
        "kind": draft.kind,
        "dataset": ds.name,
        "version": version,
        "parent": draft.previous,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "builder_version": draft.builder_version,
        **draft.fields,
        "files": files,
        "side_tables": side,
        "rows_total": sum(f["rows"] for f in files),
        "content_hash": content_hash(files, draft.rejects),
        "heldout": _heldout(ds, version, files, draft.heldout),
    }
    ds.commit(version, manifest)
    return manifest


def _place(ds: DatasetStore, version: int, part: Part, draft: Draft) -> dict:
    if part.keep is None:
        ds.place_file(version, part.src, part.name)
        return part.record()
    # A carried part that lost rows: write the surviving rows as a new part (no pixel work).
    with ds.fs.open(part.src, "rb") as fh:
        t = pq.read_table(fh)
    t = t.filter(pc.is_in(t[draft.id_column], pa.array(sorted(part.keep))))
    data = parquet_bytes(t, draft.row_group_size)
    sha = hashlib.sha256(data).hexdigest()
    name = f"part-{sha[:24]}.parquet"
    atomic_write(ds.fs, join(ds.version_path(version), name), data)
    return {"path": name, "rows": t.num_rows, "bytes": len(data), "sha256": sha}


def _heldout(ds: DatasetStore, version: int, files: list[dict], h: Heldout) -> dict:
    ids: list[str] = []
    for f in files:
        with ds.fs.open(join(ds.version_path(version), f["path"]), "rb") as fh:
            ids += pq.read_table(fh, columns=[h.column])[h.column].to_pylist()
    held = heldout_split(set(ids), h.fraction, h.seed)
    out = {
        "method": f"sha256(f'{{seed}}:{{{h.column}}}') < fraction * 2**256",
        "column": h.column,
        "fraction": h.fraction,
        "seed": h.seed,
        h.ids_key: len(held),
    }
    if h.rows_key:
        out[h.rows_key] = sum(i in held for i in ids)
    return out
