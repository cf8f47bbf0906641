"""Work units at full OpenImages scale: the per-object planner (every job a BoxJob, every unit carried
whole through Prefect) against units by reference (data/units.py: columnar cut, a units table in the
plan folder, small references).

    .venv/bin/python -m bench.units                 # 1,743,042 images, ~11.4M samples
    .venv/bin/python -m bench.units --images 200000 --old-images 200000

Each side runs in its own fresh process on the same synthetic jobs frame (the planner's columns and
dtypes, ~6.55 samples per image with OpenImages' long tail, sorted by sample_id like the planner's):
make_units wall and CPU time, its peak RSS above the frame's, and the pickled size of what the plan task
returns (PlanRef + unit list; Prefect pickles task results). Ratios are new/old from the same run.
The old planner takes ~0.9 ms and ~5 KB of objects per image (~27 min and ~9 GB at full scale on a
shared 2-core machine), so by default it runs at 1/8 of the images, beside the new one at that size
(the direct ratio), and its figures are scaled by the job count to full size (all three are linear
in the jobs: one pandas group per image, one BoxJob per job, one pickled BoxJob per job).

Measured here (2 cores, load 4-10 from other work; one run):
    same size, 1.42M jobs / 217,880 images / 2,757 units: make_units 0.92 s vs 198 s (215x), peak RSS
    above the frame 0.13 vs 1.11 GB, plan task result 0.16 vs 246 MB pickled
    full size, 11.41M jobs / 1,743,042 images / 22,057 units: make_units 10.6 s wall, 12.8 s CPU (the
    cut alone 0.40 s; the rest is encoding and writing the 638 MB units table, 690 files) vs ~1,590 s
    scaled (150x); peak RSS above the frame 0.26 vs ~8.9 GB scaled; plan task result 1.26 MB vs
    ~1,970 MB scaled (57 bytes a unit); reading one unit 3-5 ms
`legacy_make_units` is the replaced implementation, kept verbatim as the reference for the units test.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import hashlib
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from doodleflow.data.builder import BUILDER_VERSION, BoxJob, ImageJob
from doodleflow.data.config import CurationConfig

OPENIMAGES_IMAGES = 1_743_042
SAMPLES_PER_IMAGE = 6.55  # ~11.4M samples kept from 14.6M boxes (group-of, depiction, small boxes dropped)


# -- the replaced implementation (data/plan.py before units by reference), verbatim -------------------
@dataclass(frozen=True)
class LegacyUnit:
    key: str
    images: tuple[ImageJob, ...]

    @property
    def n_samples(self) -> int:
        return sum(len(i.boxes) for i in self.images)


def legacy_make_units(jobs: pd.DataFrame, cfg: CurationConfig) -> list[LegacyUnit]:
    """Group jobs by image (one decode per image) and cut into units of ~samples_per_shard samples."""
    fps = dict(zip(jobs["image_id"], jobs["fingerprint"], strict=False))
    units: list[LegacyUnit] = []
    current: list[ImageJob] = []
    count = 0
    for image_id, g in jobs.sort_values(["image_id", "sample_id"]).groupby("image_id", sort=True):
        boxes = tuple(
            BoxJob(
                r.sample_id,
                r.label,
                r.label_name,
                (r.xmin, r.ymin, r.xmax, r.ymax),
                int(r.variant),
                int(r.seed),
            )
            for r in g.itertuples()
        )
        first = g.iloc[0]
        current.append(ImageJob(str(image_id), first["uri"], first["split"], boxes))
        count += len(boxes)
        if count >= cfg.samples_per_shard:
            units.append(_legacy_unit(current, fps, cfg))
            current, count = [], 0
    if current:
        units.append(_legacy_unit(current, fps, cfg))
    return units


def _legacy_unit(images: list[ImageJob], fps: dict[str, str], cfg: CurationConfig) -> LegacyUnit:
    """The key names the unit's exact content: config, builder version, images and their bytes."""
    h = hashlib.sha256(f"{cfg.content_hash()}|{BUILDER_VERSION}".encode())
    for img in images:
        h.update(f"|{img.image_id}:{fps[img.image_id]}:".encode())
        h.update(",".join(b.sample_id for b in img.boxes).encode())
    return LegacyUnit(h.hexdigest()[:24], tuple(images))


# -- a planner-shaped jobs frame ----------------------------------------------------------------------
def _S(v: str) -> pa.Scalar:
    return pa.scalar(v, pa.large_string())


def _hex(rng: np.random.Generator, n: int) -> pa.Array:
    v = rng.integers(0, 2**63, size=n, dtype=np.int64)
    return pa.array(np.char.mod("%016x", v).astype(object), pa.large_string())


def synth_jobs(n_images: int, seed: int = 0, variants: int = 1, shuffle: bool = False) -> pd.DataFrame:
    """The planner's jobs frame: image_id/uri/fingerprint as shared Python strings per image (object
    columns, as the listing merge leaves them), the rest pandas 'str'; sorted by sample_id."""
    rng = np.random.default_rng(seed)
    ids = np.unique(np.char.mod("%016x", rng.integers(1, 2**63, size=n_images + 64, dtype=np.int64)))[
        :n_images
    ]
    mean = SAMPLES_PER_IMAGE / variants - 1
    counts = 1 + rng.negative_binomial(1.2, 1.2 / (1.2 + mean), n_images)  # OpenImages' long tail
    img = np.repeat(np.arange(n_images), counts)
    n = len(img)
    id_obj = ids.astype(object)
    uri = np.array([f"s3://openimages/train_{i % 16:x}/{v}.jpg" for i, v in enumerate(id_obj)], dtype=object)
    fp = np.array(
        [f"{s}:1700000000.{i % 1000:03d}" for i, s in enumerate(rng.integers(2e4, 9e5, n_images))], object
    )
    classes = pa.array([f"/m/{k:05x}" for k in range(601)], pa.large_string())
    names = pa.array([f"Class {k}" for k in range(601)], pa.large_string())
    lab = rng.integers(0, 601, n)
    box_key = _hex(rng, n)
    w, h = rng.beta(1.1, 2.2, n), rng.beta(1.1, 2.2, n)
    x0, y0 = rng.uniform(0, 1, n) * (1 - w), rng.uniform(0, 1, n) * (1 - h)
    frames = []
    for v in range(variants):
        sid = pc.binary_join_element_wise(
            pa.array(id_obj[img], pa.large_string()), box_key, pa.scalar(f"v{v}", pa.large_string()), _S("-")
        )
        frames.append(
            pd.DataFrame(
                {
                    "image_id": id_obj[img],
                    "label": classes.take(lab).to_pandas(),
                    "xmin": np.round(x0, 6),
                    "ymin": np.round(y0, 6),
                    "xmax": np.round(x0 + w, 6),
                    "ymax": np.round(y0 + h, 6),
                    "split": pd.Series(np.full(n, "train"), dtype="str"),
                    "box_key": box_key.to_pandas(),
                    "uri": uri[img],
                    "fingerprint": fp[img],
                    "variant": np.full(n, v, np.int64),
                    "sample_id": sid.to_pandas(),
                    "seed": rng.integers(0, 2**63, n, dtype=np.int64),
                    "label_name": names.take(lab).to_pandas(),
                }
            )
        )
    jobs = pd.concat(frames, ignore_index=True) if variants > 1 else frames[0]
    if shuffle:
        return jobs.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return jobs.sort_values("sample_id").reset_index(drop=True)


# -- measuring ----------------------------------------------------------------------------------------
def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _reset_peak() -> bool:
    """Linux: hand freed memory back (the frame's making leaves some, which make_units could reuse
    unseen), then reset the peak RSS to the current RSS: the peak that follows is make_units' own."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hwm_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e6
    return _rss_gb()


def _pickled(ref, units) -> int:
    try:
        import cloudpickle  # Prefect's result serializer

        return len(cloudpickle.dumps((ref, units)))
    except ImportError:  # pragma: no cover
        return len(pickle.dumps((ref, units)))


def measure(side: str, n_images: int, spc: int) -> dict:
    from doodleflow.data.fsutil import filesystem
    from doodleflow.data.plan_ref import PlanRef
    from doodleflow.data.units import cut_units, make_units, read_unit

    cfg = CurationConfig(samples_per_shard=spc)
    jobs = synth_jobs(n_images)
    rss0 = _hwm_gb() if _reset_peak() else _rss_gb()
    out: dict = {"side": side, "jobs": len(jobs), "images": n_images, "frame_rss_gb": round(rss0, 2)}
    c0, t0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        if side == "old":
            units = legacy_make_units(jobs, cfg)
        else:
            fs, root = filesystem(tmp)
            units = make_units(jobs, cfg, fs, os.path.join(root, "plan"))
        out["seconds"] = round(time.perf_counter() - t0, 2)
        out["cpu_seconds"] = round(time.process_time() - c0, 2)
        out["peak_above_frame_gb"] = round(_hwm_gb() - rss0, 2)
        if side == "new":  # the columnar cut and keys alone: the rest is writing the units table
            t1 = time.perf_counter()
            cut_units(jobs, cfg)
            out["cut_seconds"] = round(time.perf_counter() - t1, 2)
        out["units"] = len(units)
        ref = PlanRef(path=os.path.join(tmp, "plan"), previous=None, jobs=len(jobs), new_jobs=len(jobs))
        out["result_bytes"] = _pickled(ref, units)
        if side == "new":
            files = [os.path.join(d, f) for d, _, fs_ in os.walk(tmp) for f in fs_]
            out["table_bytes"] = sum(os.path.getsize(p) for p in files)
            out["table_files"] = len(files)
            t1 = time.perf_counter()
            for u in units[:: max(1, len(units) // 50)]:
                read_unit(fs, u)
            out["read_unit_ms"] = round(
                1e3 * (time.perf_counter() - t1) / len(units[:: max(1, len(units) // 50)]), 1
            )
    return out


def _run(side: str, n_images: int, spc: int) -> dict:
    cmd = [sys.executable, "-m", "bench.units", "--side", side, "--images", str(n_images), "--spc", str(spc)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _scaled(old: dict, jobs: int) -> dict:
    f = jobs / old["jobs"]
    keys = ("seconds", "cpu_seconds", "peak_above_frame_gb", "result_bytes")
    return {**old, **{k: old[k] * f for k in keys}, "jobs": jobs, "scaled_from_jobs": old["jobs"]}


def _line(tag: str, new: dict, old: dict) -> str:
    return (
        f"{tag}: {new['jobs']:,} jobs on {new['images']:,} images, {new['units']:,} units | make_units "
        f"{new['seconds']:.2f} s (cut {new['cut_seconds']:.2f} s) vs {old['seconds']:.0f} s: "
        f"{old['seconds'] / new['seconds']:.0f}x faster | peak RSS above the frame "
        f"{new['peak_above_frame_gb']:.2f} vs {old['peak_above_frame_gb']:.2f} GB "
        f"({new['peak_above_frame_gb'] / max(old['peak_above_frame_gb'], 1e-3):.3f}x) | plan task result "
        f"{new['result_bytes'] / 1e6:.2f} vs {old['result_bytes'] / 1e6:.0f} MB pickled "
        f"({new['result_bytes'] / old['result_bytes']:.5f}x) | units table {new['table_bytes'] / 1e6:.0f} MB "
        f"in {new['table_files']} files, {new['read_unit_ms']:.0f} ms a unit read"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=OPENIMAGES_IMAGES)
    ap.add_argument("--old-images", type=int, help="images for the old planner (default: 1/8 of --images)")
    ap.add_argument("--spc", type=int, default=512, help="samples_per_shard")
    ap.add_argument("--side", choices=("old", "new"), help=argparse.SUPPRESS)  # one side, in this process
    a = ap.parse_args()
    if a.side:
        print(json.dumps(measure(a.side, a.images, a.spc)))
        return
    small = a.old_images or max(1, a.images // 8)
    new = _run("new", a.images, a.spc)  # the light side first: the old one may hit the memory ceiling
    new_small = new if small == a.images else _run("new", small, a.spc)
    old = _run("old", small, a.spc)
    for r in (new, new_small, old):
        print(json.dumps(r))
    print(_line("same size", new_small, old))
    if small != a.images:
        print(_line("full size, old scaled by jobs", new, _scaled(old, new["jobs"])))


if __name__ == "__main__":
    main()
