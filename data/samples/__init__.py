"""Real data shipped with the package (see openimages/SOURCES.md)."""

from __future__ import annotations

import json
import os

OPENIMAGES_DIR = os.path.join(os.path.dirname(__file__), "openimages")

LABELS = {"0c7b2e492da6ba02": "/m/05z6w", "07988525d97edf50": "/m/01bfm9"}  # Penguin, Shorts


def real_photos() -> list[dict]:
    """The shipped OpenImages photos with official boxes, normalized so that PbE's `int(coord * size)`
    gives back the exact pixel box each upstream crop was cut from."""
    with open(os.path.join(OPENIMAGES_DIR, "derived_pixel_boxes.json")) as f:
        meta = json.load(f)["images"]
    out = []
    for iid, m in meta.items():
        w, h = m["size_wh"]
        boxes = [
            ((x0 + 0.5) / w, (y0 + 0.5) / h, (x1 + 0.5) / w, (y1 + 0.5) / h)
            for x0, y0, x1, y1 in m["crops"].values()
        ]
        out.append(
            {
                "image_id": iid,
                "path": os.path.join(OPENIMAGES_DIR, f"{iid}.jpg"),
                "label": m["label"],
                "size": (w, h),
                "boxes": boxes,
                "pixel_boxes": list(m["crops"].values()),
                "crops": list(m["crops"].keys()),
            }
        )
    return out
