"""OpenImages-format source trees for end-to-end tests, with every kind of bad input."""

from __future__ import annotations

import os

from doodleflow.data.samples import real_photos
from doodleflow.data.synthetic import add_photo, bbox_row, make_source, write_bbox_csv

# Quarantine reasons the bad tree must produce, with how many rows of each it contains.
BAD_EXPECTED = {
    "box_inverted": 1,
    "box_nan": 1,
    "box_out_of_range": 2,
    "box_unparseable": 1,
    "unknown_label": 1,
    "unreadable_image": 2,
}
# Annotated but not under images/ (not downloaded): listed in _absent_images.parquet, not quarantined.
ABSENT_EXPECTED = {"missing00000001": 1}


def good_tree(root: str, n: int = 12, seed: int = 0, real: bool = True) -> int:
    """Synthetic train images (V6 21-column CSV) + real photos; returns the number of boxes kept."""
    rows = make_source(root, n, seed=seed, size=(640, 480), boxes_per_image=(1, 2))
    kept = len(rows)
    if real:
        for p in real_photos():
            add_photo(
                root,
                p["path"],
                p["image_id"],
                p["label"],
                [tuple(round(v, 6) for v in b) for b in p["boxes"]],
            )
            kept += len(p["boxes"])
    return kept


def add_bad_inputs(root: str) -> None:
    """One row per bad case, in a 13-column validation CSV, plus broken image files."""
    img_dir = os.path.join(root, "images", "validation")
    os.makedirs(img_dir, exist_ok=True)
    good = make_source(
        os.path.join(root, "_tmp"),
        3,
        seed=99,
        size=(400, 300),
        boxes_per_image=(1, 1),
        split="validation",
        salt="bad",
    )
    src_imgs = os.path.join(root, "_tmp", "images", "validation")
    names = sorted(os.listdir(src_imgs))
    # a truncated JPEG and a file of garbage bytes, both named like real images
    with open(os.path.join(src_imgs, names[0]), "rb") as f:
        data = f.read()
    with open(os.path.join(img_dir, "truncated0000001.jpg"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(img_dir, "garbage00000001.jpg"), "wb") as f:
        f.write(b"this is not a jpeg" * 50)
    os.replace(os.path.join(src_imgs, names[1]), os.path.join(img_dir, "okval0000000001.jpg"))
    ok = (0.1, 0.1, 0.7, 0.8)
    rows = [
        bbox_row("truncated0000001", "/m/05z6w", ok, v6=False),
        bbox_row("garbage00000001", "/m/05z6w", ok, v6=False),
        bbox_row("okval0000000001", "/m/05z6w", ok, v6=False),
        bbox_row("missing00000001", "/m/05z6w", ok, v6=False),
        bbox_row("okval0000000001", "/m/05z6w", (0.1, 0.1, 1.3, 0.8), v6=False),
        bbox_row("okval0000000001", "/m/05z6w", (-0.2, 0.1, 0.5, 0.8), v6=False),
        bbox_row("okval0000000001", "/m/05z6w", (0.7, 0.1, 0.2, 0.8), v6=False),
        bbox_row("okval0000000001", "/m/05z6w", ("nan", 0.1, 0.5, 0.8), v6=False),
        bbox_row("okval0000000001", "/m/05z6w", ("0.1x", 0.1, 0.5, 0.8), v6=False),
        bbox_row("okval0000000001", "/m/notaclass", (0.2, 0.2, 0.6, 0.6), v6=False),
        bbox_row("okval0000000001", "/m/05z6w", (0.1, 0.1, 0.15, 0.15), v6=False),  # dropped: small
    ]
    write_bbox_csv(os.path.join(root, "annotations", "validation-annotations-bbox.csv"), rows, v6=False)
    del good


def bad_tree(root: str, n: int = 12) -> int:
    """good_tree + add_bad_inputs; returns the number of samples a refresh must produce."""
    kept = good_tree(root, n)
    add_bad_inputs(root)
    return kept + 1  # okval0000000001's one valid box
