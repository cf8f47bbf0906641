"""The input snapshot of a refresh, and the record that lets an unchanged nightly rerun skip parsing.

The snapshot is a digest of what a plan depends on, read without opening a file: the annotation and
class files' size and mtime (local) or ETag (S3), the images root listing (uris, sizes, mtimes/ETags:
data/listing.py), the whole curation config, the builder version and the planner's version. After a
commit (a new version, or "no change"), the store records `datasets/<name>/snapshots/<digest>.json`
naming the version and its content hash. A rerun whose snapshot has a record that still names the
latest version, with the same content hash, returns that version's summary without reading the CSVs.

Conservative by construction: any change (a touched file, one new image, another flag) gives another
digest, so the rerun plans as before; a stale or foreign record only costs that plan. Stores written
before snapshots existed have no records: their first rerun plans, commits (or finds no change) and
writes the record, and the next one skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass

import pyarrow as pa
from doodleflow.data.config import CurationConfig
from doodleflow.data.fsutil import atomic_write, filesystem, is_local, join
from doodleflow.data.listing import list_images, listing_digest
from doodleflow.data.openimages import SourceLayout, locate_source
from doodleflow.data.schema import BUILDER_VERSION
from doodleflow.data.store import DatasetStore

# Bump when planning changes what the same inputs plan to (a recorded snapshot must not skip then).
PLANNER_VERSION = "2"  # 2: columnar planning, absent images listed instead of quarantined


@dataclass
class Snapshot:
    digest: str
    layout: SourceLayout
    listing: pa.Table  # the images root, as data/listing.py lists it (reused by the plan)
    files: list[dict]  # uri, size, tag of the class list and every annotation file


def file_stat(uri: str) -> dict:
    """Size and a change tag without reading the file: mtime (ns) locally, ETag on S3."""
    fs, path = filesystem(uri)
    if is_local(fs):
        st = os.stat(path)
        return {"uri": uri, "size": st.st_size, "tag": str(st.st_mtime_ns)}
    info = fs.info(path)
    return {"uri": uri, "size": int(info.get("size", 0)), "tag": str(info.get("ETag", "")).strip('"')}


def take_snapshot(source: str, images: str | None, cfg: CurationConfig) -> Snapshot:
    layout = locate_source(source, images)
    files = [file_stat(u) for u in (layout.class_descriptions, *layout.bbox_csvs)]
    listing = list_images(layout.images_root)
    head = {
        "planner": PLANNER_VERSION,
        "builder": BUILDER_VERSION,
        "config": cfg.to_dict(),
        "files": files,
        "images_root": layout.images_root,
    }
    h = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    h.update(listing_digest(listing).encode())
    return Snapshot(h.hexdigest()[:32], layout, listing, files)


def _record_path(ds: DatasetStore, digest: str) -> str:
    return join(ds.root, "snapshots", f"{digest}.json")


def record_snapshot(ds: DatasetStore, digest: str | None, version: int) -> None:
    """Remember that inputs with this digest make `version` (called after every commit)."""
    if not digest:
        return
    m = ds.manifest(version)
    rec = {"version": version, "content_hash": m.get("content_hash"), "recorded_at": time.time()}
    atomic_write(ds.fs, _record_path(ds, digest), json.dumps(rec, sort_keys=True).encode())


def unchanged_summary(ds: DatasetStore, digest: str) -> dict | None:
    """The latest version's summary if these inputs are known to make it, else None."""
    path = _record_path(ds, digest)
    if not ds.fs.exists(path):
        return None
    try:
        rec = json.loads(ds.fs.cat_file(path))
    except (OSError, ValueError):
        return None
    latest = ds.latest()
    if latest is None or rec.get("version") != latest:
        return None
    m = ds.manifest(latest)
    if not rec.get("content_hash") or m.get("content_hash") != rec["content_hash"]:
        return None
    inputs = m.get("inputs", {})
    return {
        "dataset": ds.name,
        "store": ds.store_uri,
        "boxes_kept": m.get("boxes_kept", 0),
        "dropped": m.get("dropped", {}),
        "quarantined": m.get("quarantined", {}),
        "images_absent": inputs.get("images_absent", 0),
        "warnings": inputs.get("warnings", []),
        "version": latest,
        "created": False,
        "path": ds.uri(ds.version_path(latest)),
        "samples_total": m["rows_total"],
        "samples_new": 0,
        "skipped": "inputs unchanged (same snapshot): nothing parsed",
    }


def unchanged_refresh(
    source: str, images: str | None, cfg: CurationConfig, store_uri: str, dataset: str
) -> dict | None:
    """The summary of the latest version if these inputs are known to make it (no parse), else None."""
    ds = DatasetStore(store_uri, dataset)
    if ds.latest() is None:
        return None
    return unchanged_summary(ds, take_snapshot(source, images, cfg).digest)
