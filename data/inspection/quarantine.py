"""Quarantined rows of a version as their own tagged FiftyOne groups (one `target` slice each)."""

from __future__ import annotations

import os

import numpy as np
from doodleflow.data.store import DatasetStore
from PIL import Image


def _placeholder(root: str) -> str:
    """A grey tile for rows whose image is missing or unreadable (FiftyOne needs a file to show)."""
    path = os.path.join(root, "_quarantine", "missing.png")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(path)
    return path


def replace_quarantine(d, ds: DatasetStore, version: int, root: str) -> int:
    """Drop the previous quarantine groups and add this version's; saves the `quarantined` view."""
    import fiftyone as fo

    old = d.select_group_slices().match_tags("quarantined")
    if len(old):
        d.delete_samples(old)
    rows = ds.read_table(version, name="_quarantine.parquet").to_pylist()
    inputs = ds.read_table(version, name="_inputs.parquet").to_pylist()
    local = {r["image_id"]: r["uri"] for r in inputs if not r["uri"].startswith("s3://")}
    placeholder = _placeholder(root)
    samples = []
    for i, r in enumerate(rows):
        uri = local.get(r["image_id"])
        shown = uri if uri and r["reason"] != "unreadable_image" and os.path.exists(uri) else placeholder
        samples.append(
            fo.Sample(
                filepath=shown,
                group=fo.Group().element("target"),
                tags=["quarantined"],
                sample_id=r["sample_id"] or f"quarantine-{i}",
                image_id=r["image_id"],
                label=r["label"],
                quarantine_reason=r["reason"],
                quarantine_detail=r["detail"],
                quarantine_source=f"{r['file']}:{r['line']}" if r["file"] else "",
            )
        )
    if samples:
        d.add_samples(samples, progress=False)
    d.save_view("quarantined", d.select_group_slices("target").match_tags("quarantined"), overwrite=True)
    return len(samples)
