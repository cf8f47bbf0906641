"""Build or update the grouped FiftyOne dataset of one dataset version.

One FiftyOne dataset per (dataset, version), named `doodleflow-<dataset>-v<version>`, persistent.
Each sample becomes a group with the slices `target` (box as a Detection, repaint mask as a
Segmentation), `source` (the masked image) and `reference`; quarantined rows are groups of their own,
tagged `quarantined`, and the saved view `quarantined` lists them with their reason.

A new version starts as a clone of the newest earlier version's FiftyOne dataset and then only adds
(and removes) what differs, so re-running is cheap and a no-op when nothing changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pyarrow.parquet as pq
from doodleflow.data.inspection.database import ensure_database
from doodleflow.data.inspection.fo_pairs import sync_pairs_version
from doodleflow.data.inspection.media import cache_root, fiftyone_name, materialise
from doodleflow.data.store import DatasetStore

SLICES = ("target", "source", "reference")
META = ("sample_id", "image_id", "label", "label_name", "variant", "split", "mask_kind", "aug_params", "seed")
BYTES = ("target_jpeg", "mask_png", "reference_jpeg")
GEOM = ("box", "box_px", "crop_window_px")


def detection_box(box_px: list[int], window_px: list[int]) -> list[float]:
    """The box in FiftyOne's [x, y, w, h] relative to the target image (the crop window resized)."""
    wx0, wy0, wx1, wy1 = window_px
    ww, wh = wx1 - wx0, wy1 - wy0
    x0, y0, x1, y1 = box_px
    x, y = max(x0 - wx0, 0) / ww, max(y0 - wy0, 0) / wh
    return [x, y, min(x1 - wx0, ww) / ww - x, min(y1 - wy0, wh) / wh - y]


def _group_samples(row: dict, paths: dict[str, str]) -> list:
    import fiftyone as fo

    group = fo.Group()
    meta = {k: row[k] for k in META}
    meta["box_normalized"] = list(row["box"])
    det = fo.Detection(
        label=row["label_name"] or row["label"],
        bounding_box=detection_box(row["box_px"], row["crop_window_px"]),
    )
    return [
        fo.Sample(
            filepath=paths["target"],
            group=group.element("target"),
            box=det,
            repaint=fo.Segmentation(mask_path=paths["mask"]),
            **meta,
        ),
        fo.Sample(filepath=paths["source"], group=group.element("source"), **meta),
        fo.Sample(filepath=paths["reference"], group=group.element("reference"), **meta),
    ]


def _open_or_seed(ds: DatasetStore, version: int, manifest: dict):
    """This version's FiftyOne dataset: existing, else a clone of the newest earlier one, else new."""
    import fiftyone as fo

    name = fiftyone_name(ds.name, version)
    origin = {"store": ds.store_uri, "dataset": ds.name, "config_hash": manifest["config_hash"]}
    if fo.dataset_exists(name):
        d = fo.load_dataset(name)
        if {k: d.info.get(k) for k in origin} == origin:
            return d
        d.delete()  # same name, other store or config: not ours to extend
    for v in sorted((v for v in ds.versions() if v < version), reverse=True):
        prev = fiftyone_name(ds.name, v)
        if fo.dataset_exists(prev) and {k: fo.load_dataset(prev).info.get(k) for k in origin} == origin:
            d = fo.load_dataset(prev).clone(name, persistent=True)
            break
    else:
        d = fo.Dataset(name, persistent=True)
        d.add_group_field("group", default="target")
    d.info = {**d.info, **origin, "version": version, "content_hash": manifest["content_hash"]}
    d.mask_targets = {"repaint": {255: "repaint"}}
    d.save()
    return d


def _existing_ids(d) -> set[str]:
    if not len(d):
        return set()
    return set(d.select_group_slices("target").match_tags("quarantined", bool=False).distinct("sample_id"))


def _add_new(d, ds: DatasetStore, version: int, root: str, have: set[str], log) -> tuple[int, int, set[str]]:
    added = written = 0
    ids: set[str] = set()
    for path in ds.part_paths(version):
        with ds.fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            part_ids = pf.read(columns=["sample_id"])["sample_id"].to_pylist()
            ids.update(part_ids)
            if set(part_ids) <= have:
                continue
            t0, samples = time.perf_counter(), []
            for row in pf.read(columns=[*META, *GEOM, *BYTES]).to_pylist():
                if row["sample_id"] in have:
                    continue
                paths, wrote = materialise(row, root)
                written += wrote
                samples += _group_samples(row, paths)
            d.add_samples(samples, progress=False)
            added += len(samples) // len(SLICES)
            log(
                f"{os.path.basename(path)}: added {len(samples) // len(SLICES)} samples "
                f"({len(samples) // len(SLICES) / max(time.perf_counter() - t0, 1e-9):.1f}/s)"
            )
    return added, written, ids


def sync_version(
    store_uri: str,
    dataset: str,
    version: int | str | None,
    home: str,
    log: Callable[[str], None] = lambda m: None,
) -> dict:
    """Build or update the FiftyOne dataset of a version; returns its name and counts."""
    ensure_database()
    from doodleflow.data.inspection.quarantine import replace_quarantine

    ds = DatasetStore(store_uri, dataset)
    v = ds.resolve(version)
    manifest = ds.manifest(v)
    if manifest.get("kind") == "photodoodle-pairs":
        return sync_pairs_version(ds, v, manifest, home, log)
    d = _open_or_seed(ds, v, manifest)
    root = cache_root(home, ds.store_uri, dataset, manifest["config_hash"])
    have = _existing_ids(d)
    added, written, ids = _add_new(d, ds, v, root, have, log)
    gone = have - ids
    if gone:
        from fiftyone import ViewField as F

        d.delete_samples(d.select_group_slices().match(F("sample_id").is_in(sorted(gone))))
    quarantined = replace_quarantine(d, ds, v, root)
    return {
        "name": d.name,
        "dataset": dataset,
        "version": v,
        "samples": len(ids),
        "added": added,
        "removed": len(gone),
        "media_written": written,
        "quarantined": quarantined,
        "fiftyone_samples": len(d.select_group_slices()),
    }
