"""Pair rows -> model inputs, in two stages (as for Paint by Example).

1. `decode_pairs` (CPU; inside Ray Data's `map_batches` when streaming): JPEG bytes -> uint8 arrays
   resized to the training size, bilinear and without crop or flip, as PhotoDoodle's loader does (C4,
   C6); captions travel as JSON strings (Ray Data's numpy batches hold strings better than lists).
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

PAIR_COLUMNS = ["pair_id", "artist", "captions", "source_jpeg", "target_jpeg"]


def pair_counts(ds, version: int, artist: str | None, split: Split) -> dict:
    """Train and held-out pairs of `artist` (all pairs when None) in a version: `train --json` reports them."""
    ids: list[str] = []
    for p in ds.part_paths(version):
        with ds.fs.open(p, "rb") as f:
            t = pq.read_table(f, columns=["pair_id", "artist"]).to_pydict()
        ids += [i for i, a in zip(t["pair_id"], t["artist"], strict=True) if artist is None or a == artist]
    held = int(split.heldout_mask(ids).sum())
    return {"train_samples": len(ids) - held, "heldout_samples": held}


def _rgb(buf: bytes, height: int, width: int) -> np.ndarray:
    img = decode_rgb(buf)
    return img if img.shape[:2] == (height, width) else resize(img, (width, height))


def _captions_json(value) -> str:
    return value if isinstance(value, str) else json.dumps([str(c) for c in value])


def train_rows(batch: dict, artist: str | None, heldout: tuple[float, int] | None) -> list[int]:
    """Rows of `batch` a training run uses: the artist's (when given), never a held-out pair
    (`heldout` = (fraction, seed) of the version's split, data/split.py)."""
    ids = [str(p) for p in batch["pair_id"]]
    held = Split(*heldout).heldout_mask(ids) if heldout else np.zeros(len(ids), dtype=bool)
    return [i for i in range(len(ids)) if not held[i] and (artist is None or batch["artist"][i] == artist)]


def decode_pairs(
    batch: dict, height: int, width: int, artist: str | None = None, heldout: tuple[float, int] | None = None
) -> dict[str, np.ndarray]:
    """{source_jpeg, target_jpeg, captions, ...} -> {source, target (B,H,W,3) uint8, captions (JSON), pair_id};
    rows of other artists are dropped when `artist` is given, held-out pairs when `heldout` is."""
    keep = train_rows(batch, artist, heldout)
    return {
        "source": np.stack([_rgb(batch["source_jpeg"][i], height, width) for i in keep]) if keep
        else np.zeros((0, height, width, 3), np.uint8),
        "target": np.stack([_rgb(batch["target_jpeg"][i], height, width) for i in keep]) if keep
        else np.zeros((0, height, width, 3), np.uint8),
        "captions": np.array([_captions_json(batch["captions"][i]) for i in keep], dtype=object),
        "pair_id": np.array([str(batch["pair_id"][i]) for i in keep], dtype=object),
    }  # fmt: skip


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
    caps = [json.loads(c) if isinstance(c, str) else list(c) for c in arrays["captions"]]
    return PixelPairs(to_pixels(arrays["source"], device), to_pixels(arrays["target"], device), caps)


def pick_captions(captions: list[list[str]], generator: torch.Generator) -> list[str]:
    """One caption per sample, drawn uniformly from its list (PhotoDoodle's random.choice)."""
    out = []
    for caps in captions:
        i = int(torch.randint(len(caps), (1,), generator=generator, device=generator.device).item())
        out.append(caps[i])
    return out
