"""`doodleflow demo`: the main job on embedded defaults, on a small bundled OpenImages-format sample."""

from __future__ import annotations

import os

from data.samples import real_photos
from data.synthetic import add_photo, make_source
from flows import runtime


def demo_source(n_images: int) -> str:
    """Synthetic scenes plus the two real OpenImages photos with their official boxes (made once)."""
    src = os.path.join(runtime.home(), "demo", "source")
    if not os.path.exists(os.path.join(src, ".complete")):
        make_source(src, n_images, seed=0, size=(800, 600))
        for p in real_photos():
            add_photo(src, p["path"], p["image_id"], p["label"], [tuple(round(v, 6) for v in b) for b in p["boxes"]])
        open(os.path.join(src, ".complete"), "w").close()
    return src


def run_demo(store: str | None, n_images: int) -> dict:
    from flows.dataset_refresh import dataset_refresh

    src = demo_source(n_images)
    s = dataset_refresh(source=src, dataset="demo", store=store)
    text = "\n".join([
        "doodleflow demo: dataset refresh on embedded defaults",
        f"  source:      {src}",
        f"  dataset:     demo version {s['version']} ({s['samples_total']} samples, {s['samples_new']} new)",
        f"  parquet:     {s['path']}",
        f"  dropped:     {s['dropped']}",
        f"  quarantined: {s['quarantined']}",
        f"  prefect:     {os.environ['PREFECT_HOME']} (ephemeral API; runs and artifacts in its database)",
    ])
    return {**s, "source": src, "text": text}
