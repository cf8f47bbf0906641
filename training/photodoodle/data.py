"""Pair rows -> model inputs, in two stages (as for Paint by Example).

1. `decode_pairs` (CPU; inside Ray Data's `map_batches` when streaming): JPEG bytes -> uint8 pixels
   resized to the pair's bucket (training/photodoodle/buckets.py), bilinear and without crop or flip,
   as PhotoDoodle's loader does (C4, C6; `aspect="stretch"` is its one size); captions travel as JSON
   strings (Ray Data's numpy batches hold strings better than lists).
2. `to_pixels` (on the training device): uint8 -> float in [-1, 1], NCHW.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import torch
from doodleflow.data.imageio import decode_rgb, resize
from doodleflow.data.split import Split
from doodleflow.training.photodoodle.buckets import Buckets, label

PAIR_COLUMNS = ["pair_id", "artist", "captions", "source_jpeg", "target_jpeg"]


def pair_counts(ds, version: int, artist: str | None, split: Split, buckets: Buckets | None = None) -> dict:
    """Train and held-out pairs of `artist` (all pairs when None) in a version, and with `buckets` how
    many training pairs each bucket holds (from the stored source sizes): `train --json` reports them."""
    ids: list[str] = []
    sizes: list[tuple[int, int]] = []
    for p in ds.part_paths(version):
        with ds.fs.open(p, "rb") as f:
            t = pq.read_table(f, columns=["pair_id", "artist", "width", "height"]).to_pydict()
        for i, a in enumerate(t["artist"]):
            if artist is None or a == artist:
                ids.append(t["pair_id"][i])
                sizes.append((t["width"][i], t["height"][i]))
    held = split.heldout_mask(ids)
    out: dict[str, int | dict[str, int]] = {
        "train_samples": len(ids) - int(held.sum()),
        "heldout_samples": int(held.sum()),
    }
    if buckets is not None:
        hist: dict[str, int] = {}
        for (w, h), off in zip(sizes, held, strict=True):
            if not off:
                key = label(buckets.assign(w, h))
                hist[key] = hist.get(key, 0) + 1
        out["buckets"] = dict(sorted(hist.items()))
    return out


def _rgb(buf: bytes, buckets: Buckets) -> np.ndarray:
    """Decoded and resized to its bucket (bilinear, no crop or flip: C4, C6)."""
    img = decode_rgb(buf)
    h, w = buckets.assign(img.shape[1], img.shape[0])
    return img if img.shape[:2] == (h, w) else resize(img, (w, h))


def _captions_json(value) -> str:
    return value if isinstance(value, str) else json.dumps([str(c) for c in value])


def train_rows(batch: dict, artist: str | None, heldout: tuple[float, int] | None) -> list[int]:
    """Rows of `batch` a training run uses: the artist's (when given), never a held-out pair
    (`heldout` = (fraction, seed) of the version's split, data/split.py)."""
    ids = [str(p) for p in batch["pair_id"]]
    held = Split(*heldout).heldout_mask(ids) if heldout else np.zeros(len(ids), dtype=bool)
    return [i for i in range(len(ids)) if not held[i] and (artist is None or batch["artist"][i] == artist)]


def decode_pairs(
    batch: dict, buckets: Buckets, artist: str | None = None, heldout: tuple[float, int] | None = None
) -> dict[str, np.ndarray]:
    """{source_jpeg, target_jpeg, captions, ...} -> {source, target, height, width, captions (JSON), pair_id}.

    Each pair is resized to the bucket of its source (`buckets`; one bucket = the reference's
    stretch), the target to the same size. Pairs of different buckets differ in shape, so the pixels
    travel as raw HxWx3 uint8 bytes beside their `height` and `width` (plain binary columns in Ray
    Data; `image_at` reads one back). Rows of other artists are dropped when `artist` is given,
    held-out pairs when `heldout` is."""
    keep = train_rows(batch, artist, heldout)
    src = [_rgb(batch["source_jpeg"][i], buckets) for i in keep]
    tgt = [resize(t, (s.shape[1], s.shape[0])) if t.shape != s.shape else t
           for s, t in zip(src, (decode_rgb(batch["target_jpeg"][i]) for i in keep), strict=True)]  # fmt: skip
    return {
        "source": _objects([a.tobytes() for a in src]),
        "target": _objects([a.tobytes() for a in tgt]),
        "height": np.array([a.shape[0] for a in src], dtype=np.int32),
        "width": np.array([a.shape[1] for a in src], dtype=np.int32),
        "captions": _objects([_captions_json(batch["captions"][i]) for i in keep]),
        "pair_id": _objects([str(batch["pair_id"][i]) for i in keep]),
    }


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def image_at(arrays: dict, key: str, i: int) -> np.ndarray:
    """Row i's "source" or "target" of a `decode_pairs` batch as (H, W, 3) uint8."""
    h, w = int(arrays["height"][i]), int(arrays["width"][i])
    return np.frombuffer(arrays[key][i], dtype=np.uint8).reshape(h, w, 3)


def stacked(arrays: dict, key: str, rows: list[int]) -> np.ndarray:
    """Rows of one size as (B, H, W, 3) uint8; a batch mixing buckets is a bug, refused here."""
    sizes = {(int(arrays["height"][i]), int(arrays["width"][i])) for i in rows}
    if len(sizes) != 1:
        raise ValueError(f"a micro-batch must hold one bucket, got sizes {sorted(sizes)}")
    return np.stack([image_at(arrays, key, i) for i in rows])


def to_pixels(arr, device: torch.device | str) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1] on `device`."""
    x = torch.as_tensor(np.asarray(arr)).to(device, non_blocking=True)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


@dataclass
class PixelPairs:
    """A streamed batch: images still to be VAE-encoded, captions still to be text-encoded."""

    source: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    target: torch.Tensor
    captions: list[list[str]]

    def __len__(self) -> int:
        return self.source.shape[0]


def pixel_pairs(arrays: dict, device) -> PixelPairs:
    """A streamed micro-batch (rows of one bucket) on `device`."""
    caps = [json.loads(c) if isinstance(c, str) else list(c) for c in arrays["captions"]]
    rows = list(range(len(caps)))
    return PixelPairs(
        to_pixels(stacked(arrays, "source", rows), device),
        to_pixels(stacked(arrays, "target", rows), device),
        caps,
    )


def pick_captions(captions: list[list[str]], generator: torch.Generator) -> list[str]:
    """One caption per sample, drawn uniformly from its list (PhotoDoodle's random.choice)."""
    out = []
    for caps in captions:
        i = int(torch.randint(len(caps), (1,), generator=generator, device=generator.device).item())
        out.append(caps[i])
    return out
