"""OpenImages-size source trees for the scale benchmark and test: fast, deterministic, real photos present.

The annotation file has the V6 train layout (21 columns, sorted by ImageID, ~8.4 boxes per image, labels
drawn from the real 601-class list in data/samples/openimages/class-descriptions-boxable.csv), written with
numpy + pyarrow in 1M-row chunks (about 6 s per million rows here). A few hundred images are present under
images/: copies of the real photos shipped in the repository (the two OpenImages photos and the three
Paint-by-Example exemplars), each under another ImageID of the file. The rest are "not downloaded", the
usual case for a user with the full CSVs and a subset of the images.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from doodleflow.data.samples import OPENIMAGES_DIR

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES_CSV = os.path.join(OPENIMAGES_DIR, "class-descriptions-boxable.csv")
PHOTOS = [
    os.path.join(OPENIMAGES_DIR, "0c7b2e492da6ba02.jpg"),
    os.path.join(OPENIMAGES_DIR, "07988525d97edf50.jpg"),
    *(
        os.path.join(REPO, "tests", "fixtures", "paint-by-example", "reference", f"example_{i}.jpg")
        for i in (1, 2, 3)
    ),
]
BOXES_PER_IMAGE = 8.4  # OpenImages V6 train: 14,610,229 boxes on 1,743,042 images
from doodleflow.data.synthetic import V6_COLUMNS  # noqa: E402  (the official 21-column header)

TRAIN_CSV = "oidv6-train-annotations-bbox.csv"


def labels() -> pa.Array:
    with open(CLASSES_CSV) as f:
        return pa.array([line.split(",", 1)[0] for line in f if line.strip()])


def image_ids(n_images: int, seed: int) -> pa.Array:
    """Sorted, unique 16-hex-digit ids (the real file is sorted by ImageID)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(1, 2**63, size=int(n_images * 1.01) + 16, dtype=np.int64))
    ids = np.sort(rng.choice(ids, n_images, replace=False))
    return pa.array([f"{v:016x}" for v in ids.tolist()])


def _coords(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Boxes with OpenImages-like sizes (many small ones), rounded to 6 decimals like the real file."""
    w, h = rng.beta(1.1, 2.2, n), rng.beta(1.1, 2.2, n)
    x0, y0 = rng.uniform(0, 1, n) * (1 - w), rng.uniform(0, 1, n) * (1 - h)
    return {"XMin": x0, "XMax": x0 + w, "YMin": y0, "YMax": y0 + h}


def _chunk(rng, ids: pa.Array, img: np.ndarray, classes: pa.Array) -> pa.Table:
    n = len(img)
    c = {k: np.round(v, 6) for k, v in _coords(rng, n).items()}
    xclick = rng.random(n) < 0.6
    cols: dict[str, pa.Array | np.ndarray] = {
        "ImageID": ids.take(pa.array(img)),
        "Source": pa.array(np.where(xclick, "xclick", "activemil")),
        "LabelName": classes.take(pa.array(rng.integers(0, len(classes), n))),
        "Confidence": np.ones(n, np.int8),
        **c,
    }
    for k, p in (("IsOccluded", 0.6), ("IsTruncated", 0.3), ("IsGroupOf", 0.06), ("IsDepiction", 0.05)):
        cols[k] = (rng.random(n) < p).astype(np.int8)
    cols["IsInside"] = np.zeros(n, np.int8)
    for axis, lo, hi in (("X", c["XMin"], c["XMax"]), ("Y", c["YMin"], c["YMax"])):
        for i in range(1, 5):
            v = np.round(lo + rng.random(n) * (hi - lo), 6)
            cols[f"XClick{i}{axis}"] = np.where(xclick, v, -1.0)
    return pa.table({k: cols[k] for k in V6_COLUMNS})


def write_annotations(path: str, n_rows: int, seed: int = 0, chunk: int = 1_000_000) -> pa.Array:
    """Write `n_rows` annotation rows; returns the ImageIDs (sorted) the file uses."""
    n_images = max(1, round(n_rows / BOXES_PER_IMAGE))
    ids, classes = image_ids(n_images, seed), labels()
    rng = np.random.default_rng(seed + 1)
    img = np.sort(rng.integers(0, n_images, n_rows))
    img[: min(n_images, n_rows)] = np.arange(min(n_images, n_rows))  # every image has a box...
    img.sort()  # ...and the file stays sorted by ImageID
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(tmp, "wb") as f:
        f.write((",".join(V6_COLUMNS) + "\n").encode())  # unquoted, like the official file
        with pacsv.CSVWriter(f, _chunk(rng, ids, img[:1], classes).schema, write_options=opts) as w:
            for start in range(0, n_rows, chunk):
                w.write_table(_chunk(rng, ids, img[start : start + chunk], classes))
    os.replace(tmp, path)
    return ids


def add_photos(root: str, ids: list[str], split: str = "train_0") -> list[str]:
    """Copy the real photos under the given ImageIDs (round robin); returns the paths written."""
    out = []
    d = os.path.join(root, "images", split)
    os.makedirs(d, exist_ok=True)
    for i, iid in enumerate(ids):
        p = os.path.join(d, f"{iid}.jpg")
        shutil.copyfile(PHOTOS[i % len(PHOTOS)], p)
        out.append(p)
    return out


def make_tree(root: str, n_rows: int, present: int, seed: int = 0) -> list[str]:
    """A full source tree: classes, one train CSV of `n_rows`, `present` photos; returns all ImageIDs."""
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    shutil.copyfile(CLASSES_CSV, os.path.join(root, "annotations", "class-descriptions-boxable.csv"))
    ids = write_annotations(os.path.join(root, "annotations", TRAIN_CSV), n_rows, seed).to_pylist()
    add_photos(root, present_ids(ids, present))
    return ids


def present_ids(ids: list[str], n: int, offset: int = 0) -> list[str]:
    """`n` ids spread evenly over the file (deterministic); `offset` picks a disjoint set."""
    step = max(1, len(ids) // (n + 1))
    return [ids[(i + 1) * step - 1 - offset] for i in range(n)]
