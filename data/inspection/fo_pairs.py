"""PhotoDoodle pair datasets in FiftyOne: one group per pair with the slices `source` and `target`,
caption(s), artist and trigger as fields; quarantined pairs as a tagged saved view."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
from doodleflow.data.fsutil import atomic_write
from doodleflow.data.inspection.media import _LOCAL, cache_root, fiftyone_name, sample_dir
from doodleflow.data.store import DatasetStore

META = ("pair_id", "artist", "trigger", "captions", "width", "height")


def _open(ds: DatasetStore, version: int, manifest: dict):
    import fiftyone as fo

    name = fiftyone_name(ds.name, version)
    origin = {"store": ds.store_uri, "dataset": ds.name, "content_hash": manifest["content_hash"]}
    if fo.dataset_exists(name):
        d = fo.load_dataset(name)
        if {k: d.info.get(k) for k in origin} == origin:
            return d
        d.delete()
    d = fo.Dataset(name, persistent=True)
    d.add_group_field("group", default="source")
    d.info = {**origin, "version": version, "kind": manifest["kind"]}
    d.save()
    return d


def _pair_samples(row: dict, root: str) -> tuple[list, bool]:
    import fiftyone as fo

    sd = sample_dir(root, row["pair_id"])
    paths = {k: os.path.join(sd, f"{k}.jpg") for k in ("source", "target")}
    wrote = False
    for k, p in paths.items():
        if not os.path.exists(p):
            atomic_write(_LOCAL, p, row[f"{k}_jpeg"])
            wrote = True
    group = fo.Group()
    meta = {k: row[k] for k in META} | {"caption": row["captions"][0] if row["captions"] else ""}
    return [fo.Sample(filepath=paths[k], group=group.element(k), **meta) for k in ("source", "target")], wrote


def _replace_quarantine(d, rows: list[dict], root: str) -> None:
    """Quarantined pairs as tagged groups (a grey tile in `source`) and the saved view `quarantined`."""
    import fiftyone as fo
    from doodleflow.data.inspection.quarantine import _placeholder

    old = d.select_group_slices().match_tags("quarantined")
    if len(old):
        d.delete_samples(old)
    tile = _placeholder(root)
    d.add_samples(
        [
            fo.Sample(
                filepath=tile,
                group=fo.Group().element("source"),
                tags=["quarantined"],
                pair_id=r.get("pair_id") or f"quarantine-{i}",
                artist=r.get("artist"),
                quarantine_reason=r["reason"],
                quarantine_detail=r.get("detail", ""),
                quarantine_source=f"{r.get('file')}:{r.get('line')}",
            )
            for i, r in enumerate(rows)
        ],
        progress=False,
    )
    d.save_view("quarantined", d.select_group_slices("source").match_tags("quarantined"), overwrite=True)


def sync_pairs_version(ds: DatasetStore, version: int, manifest: dict, home: str, log=lambda m: None) -> dict:
    d = _open(ds, version, manifest)
    root = cache_root(home, ds.store_uri, ds.name, manifest["content_hash"][:16])
    have = (
        set(d.select_group_slices("source").match_tags("quarantined", bool=False).distinct("pair_id"))
        if len(d)
        else set()
    )
    added = written = 0
    for path in ds.part_paths(version):
        with ds.fs.open(path, "rb") as f:
            rows = [
                r
                for r in pq.read_table(f, columns=[*META, "source_jpeg", "target_jpeg"]).to_pylist()
                if r["pair_id"] not in have
            ]
        samples = []
        for r in rows:
            smp, wrote = _pair_samples(r, root)
            samples += smp
            written += wrote
        if samples:
            d.add_samples(samples, progress=False)
            added += len(rows)
            log(f"{os.path.basename(path)}: added {len(rows)} pairs")
    q = ds.read_table(version, name="_quarantine.parquet").to_pylist()
    _replace_quarantine(d, q, root)
    return {
        "name": d.name,
        "dataset": ds.name,
        "version": version,
        "kind": "photodoodle-pairs",
        "samples": len(have) + added,
        "added": added,
        "removed": 0,
        "media_written": written,
        "quarantined": len(q),
        "fiftyone_samples": len(d.select_group_slices().match_tags("quarantined", bool=False)),
    }
