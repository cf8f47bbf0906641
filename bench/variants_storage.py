"""Storage cost of curation variants (issue 12 item 2): bytes per stored sample from a real refresh.

Real photos only: the two shipped OpenImages train photos with their official boxes (7 boxes), plus
four scikit-image photos (CC0 / public domain) with hand-drawn object boxes. For `--variants` 1, 2
and 4 the same source is refreshed into a fresh store with the real curation code (plan, build,
commit), and the committed version's Parquet bytes are divided by its samples. The latent cache's
per-sample size follows from its row format (training/pbe/cache.py) at 512 px for SD v1 encoders.

    .venv/bin/python -m bench.variants_storage
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pyarrow.parquet as pq
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
from doodleflow.data.refresh import commit_version, diff_with_latest
from doodleflow.data.samples import real_photos
from doodleflow.data.shard import build_unit
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import add_photo, write_classes
from doodleflow.data.units import make_units, new_plan_folder
from PIL import Image

# (skimage.data name, normalized box of its main object)
SKIMAGE = {
    "astronaut": (0.30, 0.05, 0.70, 0.55),
    "coffee": (0.25, 0.05, 0.85, 0.75),
    "chelsea": (0.15, 0.05, 0.75, 0.95),
    "rocket": (0.40, 0.05, 0.62, 0.85),
}
# SD v1 at 512 px: 4 latent channels at 64x64 (moments = 8 channels, fp16) twice, the fp16 mask, CLIP-L fp32.
LATENT_BYTES = 2 * (8 * 64 * 64 * 2) + 64 * 64 * 2 + 768 * 4


def make_source(root: str) -> int:
    """The real photos as an OpenImages-layout source; returns the number of boxes."""
    write_classes(root)
    n = 0
    for p in real_photos():
        add_photo(root, p["path"], p["image_id"], p["label"], p["boxes"])
        n += len(p["boxes"])
    import skimage.data

    for i, (name, box) in enumerate(SKIMAGE.items()):
        path = os.path.join(root, f"{name}.jpg")
        Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB").save(path, quality=95)
        add_photo(root, path, f"{i:016x}", "/m/01g317", [box])
        n += 1
    return n


def refresh(src: str, store: str, variants: int) -> dict:
    cfg = CurationConfig(seed=0, variants=variants)
    ds = DatasetStore(store, "v")
    plan = plan_inputs(src, None, cfg)
    diff = diff_with_latest(ds, plan)
    stats = [
        build_unit(u, cfg, store, "v") for u in make_units(diff.new_jobs, cfg, ds.fs, new_plan_folder(ds))
    ]
    v = commit_version(ds, cfg, plan, diff, stats, f"bench-{variants}", src)["version"]
    m = ds.manifest(v)
    cols = {"target_jpeg": 0, "mask_png": 0, "reference_jpeg": 0}
    for p in ds.part_paths(v):
        t = pq.read_table(p, columns=list(cols))
        for c in cols:
            cols[c] += sum(len(b) for b in t.column(c).to_pylist())
    rows = m["rows_total"]
    return {
        "rows": rows,
        "bytes": sum(f["bytes"] for f in m["files"]),
        "per_sample": sum(f["bytes"] for f in m["files"]) / rows,
        **{c: b / rows for c, b in cols.items()},
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        boxes = make_source(src)
        print(
            f"{boxes} boxes on 6 real photos; latent cache row at 512 px (SD v1): {LATENT_BYTES / 1e3:.1f} kB"
        )
        print(
            "| --variants | samples | store bytes | bytes/sample | target JPEG | mask PNG | reference JPEG |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        base = None
        for v in (1, 2, 4):
            r = refresh(src, os.path.join(tmp, f"store{v}"), v)
            base = base or r["bytes"]
            print(f"| {v} | {r['rows']} | {r['bytes'] / 1e6:.2f} MB ({r['bytes'] / base:.2f}x) | "
                  f"{r['per_sample'] / 1e3:.1f} kB | {r['target_jpeg'] / 1e3:.1f} kB | {r['mask_png'] / 1e3:.1f} kB | "
                  f"{r['reference_jpeg'] / 1e3:.1f} kB |")  # fmt: skip


if __name__ == "__main__":
    main()
