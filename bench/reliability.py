"""Reliability under bad input at scale: a refresh of ~5,000 samples with ~5% bad inputs.

Every good sample must be written, every bad input quarantined with its reason, nothing lost:
    boxes in the CSVs == samples written + quarantined + dropped (by reason).
Prints the counts, the time, and the throughput against the same refresh without bad inputs
(measured in the same run). Run: .venv/bin/python bench/reliability.py [--samples 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time

os.environ.setdefault("DOODLEFLOW_HOME", tempfile.mkdtemp(prefix="doodleflow-reliability-"))

from doodleflow.data.synthetic import bbox_row, make_source, write_bbox_csv
from doodleflow.flows import runtime  # noqa: F401  (environment defaults)

BAD_KINDS = [
    "missing_image",
    "unreadable_image",
    "box_out_of_range",
    "box_inverted",
    "box_nan",
    "box_unparseable",
    "unknown_label",
]


def make_tree(root: str, samples: int, bad_fraction: float, seed: int = 0) -> dict[str, int]:
    """~samples good boxes on 640x480 images (2 per image) plus bad rows; returns bad counts by reason."""
    rows = make_source(root, samples // 2, seed=seed, size=(640, 480), boxes_per_image=(2, 2))
    rng = random.Random(seed)
    n_bad = round(len(rows) * bad_fraction)
    img_dir = os.path.join(root, "images", "train_0")
    bad_rows, counts = [], {k: 0 for k in BAD_KINDS}
    ok = (0.1, 0.1, 0.6, 0.7)
    for i in range(n_bad):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        iid = f"bad{i:013d}"
        box, label = ok, "/m/05z6w"
        if kind == "unreadable_image":
            with open(os.path.join(img_dir, f"{iid}.jpg"), "wb") as f:
                f.write(rng.randbytes(2000))
        elif kind != "missing_image":
            iid = rows[rng.randrange(len(rows))][0]
            box = {
                "box_out_of_range": (0.1, 0.1, 1.4, 0.7),
                "box_inverted": (0.7, 0.1, 0.2, 0.7),
                "box_nan": ("nan", 0.1, 0.6, 0.7),
                "box_unparseable": ("x1", 0.1, 0.6, 0.7),
            }.get(kind, ok)
            label = "/m/notaclass" if kind == "unknown_label" else label
        bad_rows.append(bbox_row(iid, label, box))
        counts[kind] += 1
    write_bbox_csv(
        os.path.join(root, "annotations", "oidv6-train-annotations-bbox.csv"), bad_rows, append=True
    )
    return {"good_rows": len(rows), **counts}


def refresh(src: str, store: str) -> tuple[dict, float]:
    from doodleflow.flows.dataset_refresh import dataset_refresh

    t0 = time.perf_counter()
    s = dataset_refresh(
        source=src, dataset="rel", store=store, config={"require_images": True}
    )  # missing = bad
    return s, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--bad", type=float, default=0.05)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reliability-")
    try:
        expected = make_tree(os.path.join(work, "bad"), a.samples, a.bad)
        make_tree(os.path.join(work, "clean"), a.samples, 0.0)
        clean, t_clean = refresh(os.path.join(work, "clean"), os.path.join(work, "store-clean"))
        bad, t_bad = refresh(os.path.join(work, "bad"), os.path.join(work, "store-bad"))
        q = bad["quarantined"]
        bad_expected = {k: v for k, v in expected.items() if k != "good_rows" and v}
        rows_in_csv = expected["good_rows"] + sum(bad_expected.values())
        report = {
            "rows_in_csv": rows_in_csv,
            "samples_written": bad["samples_total"],
            "quarantined": q,
            "dropped": bad["dropped"],
            "bad_rows_written": bad_expected,
            # nothing lost: every row is a sample, a quarantined row or a dropped row
            "every_row_accounted": bad["samples_total"] + sum(q.values()) + sum(bad["dropped"].values())
            == rows_in_csv,
            # every good one written: the same samples as the refresh of the same tree without bad rows
            "good_samples_all_written": bad["samples_total"] == clean["samples_total"],
            "every_bad_row_quarantined_with_its_reason": q == bad_expected,
            "seconds_bad": round(t_bad, 1),
            "seconds_clean": round(t_clean, 1),
            "throughput_ratio_bad_vs_clean": round(
                (bad["samples_total"] / t_bad) / (clean["samples_total"] / t_clean), 3
            ),
        }
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
