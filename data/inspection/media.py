"""Materialise Parquet sample rows into image files once (FiftyOne shows files, not bytes).

Files live under `$DOODLEFLOW_HOME/cache/media/<store+dataset hash>/<config hash>/<sample_id>/`; a file
that exists is never rewritten, so materialising a new version writes only its new samples.
"""

from __future__ import annotations

import hashlib
import io
import os

import numpy as np
from doodleflow.data.fsutil import atomic_write
from fsspec.implementations.local import LocalFileSystem
from PIL import Image

FILES = ("target.jpg", "source.jpg", "reference.jpg", "mask.png")
_LOCAL = LocalFileSystem()


def fiftyone_name(dataset: str, version: int) -> str:
    """The FiftyOne dataset of one dataset version (sample triples and pairs alike)."""
    return f"doodleflow-{dataset}-v{version}"


def cache_root(home: str, store_uri: str, dataset: str, config_hash: str) -> str:
    key = hashlib.sha256(f"{store_uri}|{dataset}".encode()).hexdigest()[:12]
    return os.path.join(home, "cache", "media", f"{dataset}-{key}", config_hash)


def sample_dir(root: str, sample_id: str) -> str:
    return os.path.join(root, sample_id[:2], sample_id)


def masked_source(target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The source the model sees: the target with the repaint region (mask 255) blanked to black."""
    keep = 1.0 - mask.astype(np.float32)[..., None] / 255.0
    return (target.astype(np.float32) * keep).round().astype(np.uint8)


def materialise(row: dict, root: str) -> tuple[dict[str, str], bool]:
    """Paths of the sample's files (target, source, reference, mask), writing any that are missing.
    Returns (paths, whether anything was written)."""
    d = sample_dir(root, row["sample_id"])
    paths = {name.split(".")[0]: os.path.join(d, name) for name in FILES}
    if all(os.path.exists(p) for p in paths.values()):
        return paths, False
    target = np.asarray(Image.open(io.BytesIO(row["target_jpeg"])).convert("RGB"))
    mask = np.asarray(Image.open(io.BytesIO(row["mask_png"])).convert("L"))
    binary = np.where(mask >= 128, 255, 0).astype(np.uint8)  # FiftyOne colours every value as a class
    out = {
        "target": row["target_jpeg"],
        "reference": row["reference_jpeg"],
        "source": _encode(masked_source(target, mask), "JPEG"),
        "mask": _encode(binary, "PNG"),
    }
    for k, data in out.items():
        atomic_write(_LOCAL, paths[k], data)
    return paths, True


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()
