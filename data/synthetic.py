"""Generate a small OpenImages-format source tree (demo, tests, benchmarks).

Layout written: `<root>/annotations/{class-descriptions-boxable.csv, <split>-annotations-bbox.csv}` and
`<root>/images/<split>/<ImageID>.jpg`. Images are synthetic scenes (gradient background + coloured
shapes, one per box) so boxes enclose something visible; real photos can be added with `add_photo`.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw

V6_COLUMNS = [
    "ImageID",
    "Source",
    "LabelName",
    "Confidence",
    "XMin",
    "XMax",
    "YMin",
    "YMax",
    "IsOccluded",
    "IsTruncated",
    "IsGroupOf",
    "IsDepiction",
    "IsInside",
    "XClick1X",
    "XClick2X",
    "XClick3X",
    "XClick4X",
    "XClick1Y",
    "XClick2Y",
    "XClick3Y",
    "XClick4Y",
]
VAL_COLUMNS = V6_COLUMNS[:13]
CLASSES = [
    ("/m/0cmf2", "Airplane"),
    ("/m/05z6w", "Penguin"),
    ("/m/01bfm9", "Shorts"),
    ("/m/0k4j", "Car"),
    ("/m/01yrx", "Cat"),
    ("/m/0bt9lr", "Dog"),
]


def image_id(i: int, salt: str = "") -> str:
    return hashlib.sha1(f"{salt}{i}".encode()).hexdigest()[:16]


def synthetic_image(rng: np.random.Generator, size: tuple[int, int], boxes: list[tuple]) -> Image.Image:
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = rng.integers(40, 200, size=3)
    img = np.stack(
        [(base[c] + 50 * np.sin(x / (37 + 11 * c)) + 40 * np.cos(y / (53 + 7 * c))) for c in range(3)], -1
    )
    img = img + rng.normal(0, 6, img.shape)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for xmin, ymin, xmax, ymax in boxes:
        color = tuple(int(c) for c in rng.integers(0, 255, size=3))
        draw.ellipse([xmin * w, ymin * h, xmax * w, ymax * h], fill=color, outline=(0, 0, 0), width=3)
    return im


def random_box(rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A box whose area is mostly inside PbE's [0.02, 0.8] window."""
    bw, bh = rng.uniform(0.15, 0.7), rng.uniform(0.15, 0.7)
    x0, y0 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
    return (round(x0, 6), round(y0, 6), round(x0 + bw, 6), round(y0 + bh, 6))


def write_classes(root: str, header: bool = False) -> None:
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", "class-descriptions-boxable.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if header:
            w.writerow(["LabelName", "DisplayName"])
        w.writerows(CLASSES)


def bbox_row(iid: str, label: str, box: tuple, v6: bool = True) -> list[str]:
    xmin, ymin, xmax, ymax = box
    row = [iid, "xclick", label, "1", f"{xmin}", f"{xmax}", f"{ymin}", f"{ymax}", "0", "0", "0", "0", "0"]
    return row + ["-1"] * 8 if v6 else row


def write_bbox_csv(path: str, rows: list[list[str]], v6: bool = True, append: bool = False) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    new = not (append and os.path.exists(path))
    with open(path, "a" if append else "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if new:
            w.writerow(V6_COLUMNS if v6 else VAL_COLUMNS)
        w.writerows(rows)


def make_source(
    root: str,
    n_images: int,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    boxes_per_image: tuple[int, int] = (1, 3),
    split: str = "train",
    salt: str = "",
    quality: int = 90,
) -> list[list[str]]:
    """Write `n_images` synthetic images and their bbox rows; returns the rows written."""
    rng = np.random.default_rng(seed)
    write_classes(root)
    rows = []
    img_dir = os.path.join(root, "images", split if split != "train" else "train_0")
    os.makedirs(img_dir, exist_ok=True)
    for i in range(n_images):
        iid = image_id(i, f"{salt}{seed}")
        boxes = [
            random_box(rng) for _ in range(int(rng.integers(boxes_per_image[0], boxes_per_image[1] + 1)))
        ]
        synthetic_image(rng, size, boxes).save(os.path.join(img_dir, f"{iid}.jpg"), quality=quality)
        rows += [
            bbox_row(iid, CLASSES[int(rng.integers(len(CLASSES)))][0], b, split == "train") for b in boxes
        ]
    name = "oidv6-train-annotations-bbox.csv" if split == "train" else f"{split}-annotations-bbox.csv"
    write_bbox_csv(os.path.join(root, "annotations", name), rows, v6=split == "train", append=True)
    return rows


def add_photo(
    root: str, photo: str, iid: str, label: str, boxes: list[tuple], split: str = "train_0"
) -> None:
    """Ship a real photo (e.g. an OpenImages validation image) with its official boxes into the tree."""
    os.makedirs(os.path.join(root, "images", split), exist_ok=True)
    shutil.copyfile(photo, os.path.join(root, "images", split, f"{iid}.jpg"))
    write_bbox_csv(
        os.path.join(root, "annotations", "oidv6-train-annotations-bbox.csv"),
        [bbox_row(iid, label, b) for b in boxes],
        append=True,
    )
