"""The latent cache: a dataset version with the frozen encoders already applied (mosaicml-style).

Training from the cache skips two VAE encodes and a CLIP forward per sample, about as much compute
as the UNet's training step itself (performance-and-style.md 1.2), so it roughly doubles GPU
throughput. It is valid because curation fixes each sample's crop, mask and reference
augmentation; the VAE posterior (mean, logvar) is cached rather than one sample of it, so latent
sampling stays stochastic per step exactly as when encoding on the fly.

    caches/pbe-latents/<dataset>/v000003/<key>/
        part-<n>.parquet       sample_id + fp16 moments, fp16 latent mask, fp32 CLIP pooled token
        _manifest.json         shapes, dtypes, encoder identity; written last (= cache complete)

`<key>` hashes the encoders' identity and the preprocessing (resolution, mask binarization), so
a different VAE/CLIP or resolution never reads a stale cache.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from doodleflow.data.fsutil import atomic_write, filesystem, join
from doodleflow.data.store import DatasetStore
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import SAMPLE_COLUMNS, decode_rows, pixel_batch
from doodleflow.training.pbe.loss import EncodedBatch, encode_batch
from doodleflow.training.pbe.model import PbEModel

FIELDS = {  # column -> stored dtype
    "target_moments": "float16",
    "masked_moments": "float16",
    "mask_latent": "float16",
    "clip_pooled": "float32",
}
MANIFEST = "_manifest.json"
FORMAT = "doodleflow-pbe-latents/1"


def cache_key(cfg: TrainConfig) -> str:
    ident = {
        "format": FORMAT,
        "encoders": cfg.model.source.identity(),
        "resolution": cfg.data.resolution,
        "binarize_mask": cfg.data.binarize_mask,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir(cfg: TrainConfig) -> tuple:
    """(filesystem, path) of the cache for cfg's dataset version and encoders."""
    fs, root = filesystem(cfg.run.store)
    return fs, join(root, "caches", "pbe-latents", cfg.run.dataset, f"v{cfg.run.version:06d}", cache_key(cfg))


def find_cache(cfg: TrainConfig) -> dict | None:
    """The complete cache's manifest (with part URIs), or None."""
    fs, d = cache_dir(cfg)
    p = join(d, MANIFEST)
    return json.loads(fs.cat_file(p)) if fs.exists(p) else None


# -- encoding ---------------------------------------------------------------------------------
def encoded_to_columns(enc: EncodedBatch) -> dict[str, list[bytes]]:
    out = {}
    for name, dtype in FIELDS.items():
        arr = getattr(enc, name).detach().float().cpu().numpy().astype(dtype)
        out[name] = [row.tobytes() for row in arr]
    return out


def encode_table(
    model: PbEModel, table: pa.Table, cfg: TrainConfig, batch_size: int
) -> tuple[pa.Table, dict]:
    """Sample rows -> cache rows (and the per-sample shapes) with the model's frozen encoders."""
    cols: dict[str, list] = {"sample_id": [], **{k: [] for k in FIELDS}}
    shapes = {}
    for start in range(0, table.num_rows, batch_size):
        rows = table.slice(start, batch_size).to_pydict()
        arrays = decode_rows(rows, cfg.data.resolution, model.clip_size)
        enc = encode_batch(model, pixel_batch(arrays, model.device, cfg.data.binarize_mask))
        shapes = {k: list(getattr(enc, k).shape[1:]) for k in FIELDS}
        cols["sample_id"] += rows["sample_id"]
        for k, v in encoded_to_columns(enc).items():
            cols[k] += v
    return pa.table(cols), shapes


def build_latent_cache(
    model: PbEModel, cfg: TrainConfig, batch_size: int = 16, log: Callable[[str], None] = print
) -> dict:
    """Encode every part of cfg's dataset version (parts already written are kept: a killed build
    resumes). Returns the manifest."""
    found = find_cache(cfg)
    if found:
        return found
    ds = DatasetStore(cfg.run.store, cfg.run.dataset)
    fs, d = cache_dir(cfg)
    parts, shapes, rows = [], {}, 0
    for i, src in enumerate(ds.part_paths(cfg.run.version)):
        dst = join(d, f"part-{i:05d}.parquet")
        if not fs.exists(dst):
            with ds.fs.open(src, "rb") as f:
                table = pq.read_table(f, columns=["sample_id", *SAMPLE_COLUMNS])
            out, shapes = encode_table(model, table, cfg, batch_size)
            sink = io.BytesIO()
            pq.write_table(out, sink, row_group_size=32, compression="none")
            atomic_write(fs, dst, sink.getvalue())
            log(f"latent cache: part {i} ({out.num_rows} samples) -> {dst}")
        with fs.open(dst, "rb") as f:
            meta = pq.read_metadata(f)
        rows += meta.num_rows
        parts.append(ds.uri(dst) if cfg.run.store.startswith("s3://") else dst)
    if not shapes:  # every part came from an earlier, interrupted build: read one row's shapes back
        shapes = _shapes_from_model(model, cfg)
    manifest = {
        "format": FORMAT,
        "key": cache_key(cfg),
        "dataset": cfg.run.dataset,
        "version": cfg.run.version,
        "encoders": cfg.model.source.identity(),
        "resolution": cfg.data.resolution,
        "binarize_mask": cfg.data.binarize_mask,
        "dtypes": FIELDS,
        "shapes": shapes,
        "rows": rows,
        "parts": parts,
    }
    atomic_write(fs, join(d, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode())
    return manifest


def _shapes_from_model(model: PbEModel, cfg: TrainConfig) -> dict:
    r, f = cfg.data.resolution, 2 ** (len(model.vae.config.block_out_channels) - 1)
    c = model.vae.config.latent_channels
    return {
        "target_moments": [2 * c, r // f, r // f],
        "masked_moments": [2 * c, r // f, r // f],
        "mask_latent": [1, r // f, r // f],
        "clip_pooled": [model.image_encoder.config.hidden_size],
    }


# -- reading ----------------------------------------------------------------------------------
def decode_cached(batch: dict, manifest: dict) -> dict[str, np.ndarray]:
    """Ray Data map_batches fn: cache row bytes -> arrays (B, *shape), still in the stored dtype."""
    return {
        k: np.stack(
            [np.frombuffer(b, dtype=manifest["dtypes"][k]).reshape(manifest["shapes"][k]) for b in batch[k]]
        )
        for k in FIELDS
    }


def encoded_batch(arrays: dict, device: torch.device | str = "cpu") -> EncodedBatch:
    return EncodedBatch(**{k: torch.as_tensor(np.asarray(arrays[k])).to(device).float() for k in FIELDS})
