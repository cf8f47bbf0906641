"""The latent cache: each Parquet part of a dataset with the frozen encoders already applied.

Training from the cache skips two VAE encodes and a CLIP forward per sample, about as much compute
as the UNet's training step itself (docs/benchmarks.md, model FLOPs: the SD VAE encoder at 512 px
costs 1.12 TF, the PbE UNet forward 0.80 TF), so it roughly doubles GPU
throughput. It is valid because curation fixes each sample's crop, mask and reference
augmentation; the VAE posterior (mean, logvar) is cached rather than one sample of it, so latent
sampling stays stochastic per step exactly as when encoding on the fly.

Entries follow the data, not the version: a version's parts are content-addressed (their sha256 is
in the version manifest), and a part carried into the next version keeps its sha256, so its cache
entry is reused and a nightly version encodes only its new parts.

    caches/pbe-latents/<dataset>/<key>/parts/<part sha256[:32]>.parquet
        sample_id, image_id + fp16 moments, fp16 latent mask, fp32 CLIP pooled token; shapes in the
        Parquet metadata
    caches/pbe-latents/<dataset>/<key>/v000003/_manifest.json
        the version's entries in part order, shapes, dtypes, encoder identity; written last (= the
        version's cache is complete)

`<key>` hashes the encoders' identity and the preprocessing (resolution, mask binarization), so
a different VAE/CLIP or resolution never reads a stale cache. Each entry is written atomically,
so a killed build resumes with the entries it had finished. Key, folder, atomic entries, manifest
last, find and the build's skeleton are the shared mechanism (training/runs/latent_cache.py); this
module is what is Paint-by-Example's: the encoder, the entry layout and the manifest's fields.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from doodleflow.data.fsutil import join
from doodleflow.data.store import DatasetStore
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import SAMPLE_COLUMNS, decode_rows, pixel_batch
from doodleflow.training.pbe.loss import EncodedBatch, encode_batch
from doodleflow.training.pbe.model import PbEModel
from doodleflow.training.runs import latent_cache
from doodleflow.training.runs.latent_cache import CacheDir

FIELDS = {  # column -> stored dtype
    "target_moments": "float16",
    "masked_moments": "float16",
    "mask_latent": "float16",
    "clip_pooled": "float32",
}
MANIFEST = "_manifest.json"
FORMAT = "doodleflow-pbe-latents/2"  # /2: entries per content-addressed part, with image_id
SHAPES_KEY = b"doodleflow.shapes"


def cache_key(cfg: TrainConfig) -> str:
    ident = {
        "format": FORMAT,
        "encoders": cfg.model.source.identity(),
        "resolution": cfg.data.resolution,
        "binarize_mask": cfg.data.binarize_mask,
    }
    return latent_cache.cache_key(ident, 12)


def latents(cfg: TrainConfig) -> CacheDir:
    """The cache folder of cfg's dataset and encoders (every version's entries and manifests)."""
    return CacheDir.at(cfg.run.store, "caches", "pbe-latents", cfg.run.dataset, cache_key(cfg))


def _manifest_name(cfg: TrainConfig) -> str:
    return f"v{cfg.run.version:06d}/{MANIFEST}"


def cache_dir(cfg: TrainConfig) -> tuple:
    """(filesystem, path) of the directory holding cfg's version manifest."""
    c = latents(cfg)
    return c.fs, c.file(f"v{cfg.run.version:06d}")


def find_cache(cfg: TrainConfig) -> dict | None:
    """The complete cache's manifest (with part URIs), or None."""
    return latents(cfg).manifest(_manifest_name(cfg))


@dataclass(frozen=True)
class Entry:
    """One dataset part and where its latents live."""

    src: str  # the dataset part (store path)
    dst: str  # its cache entry (store path)
    sha256: str  # the part's content address


def entries(cfg: TrainConfig) -> list[Entry]:
    """The cache entries of cfg's version, in the version's part order."""
    ds = DatasetStore(cfg.run.store, cfg.run.dataset)
    files = ds.manifest(cfg.run.version)["files"]
    c = latents(cfg)
    vp = ds.version_path(cfg.run.version)
    return [Entry(join(vp, f["path"]), c.file(_entry_name(f["sha256"])), f["sha256"]) for f in files]


def _entry_name(sha: str) -> str:
    return f"parts/{sha[:32]}.parquet"


def missing_entries(cfg: TrainConfig) -> list[Entry]:
    c = latents(cfg)
    return [e for e in entries(cfg) if not c.has(_entry_name(e.sha256))]


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
    cols: dict[str, list] = {"sample_id": [], "image_id": [], **{k: [] for k in FIELDS}}
    for start in range(0, table.num_rows, batch_size):
        rows = table.slice(start, batch_size).to_pydict()
        arrays = decode_rows(rows, cfg.data.resolution, model.clip_size)
        enc = encode_batch(model, pixel_batch(arrays, model.device, cfg.data.binarize_mask))
        cols["sample_id"] += rows["sample_id"]
        cols["image_id"] += rows["image_id"]
        for k, v in encoded_to_columns(enc).items():
            cols[k] += v
    return pa.table(cols), shapes_of(model, cfg)


def encode_entry(model: PbEModel, cfg: TrainConfig, entry: Entry, batch_size: int = 16) -> int:
    """Encode one dataset part into its cache entry (atomic); returns its rows."""
    c = latents(cfg)
    with c.fs.open(entry.src, "rb") as f:
        table = pq.read_table(f, columns=["sample_id", "image_id", *SAMPLE_COLUMNS])
    out, shapes = encode_table(model, table, cfg, batch_size)
    out = out.replace_schema_metadata({SHAPES_KEY: json.dumps(shapes).encode()})
    sink = io.BytesIO()
    pq.write_table(out, sink, row_group_size=32, compression="none")
    c.write(_entry_name(entry.sha256), sink.getvalue())
    return out.num_rows


def build_latent_cache(
    model: PbEModel, cfg: TrainConfig, batch_size: int = 16, log: Callable[[str], None] = print
) -> dict:
    """Encode, in this process, every part of cfg's version that has no cache entry yet (entries of
    parts shared with earlier versions are reused; a killed build resumes). Returns the manifest.
    training/pbe/ray_cache.py does the same over a pool of Ray actors."""

    def encode(todo: list[Entry]) -> None:
        for e in todo:
            rows = encode_entry(model, cfg, e, batch_size)
            log(f"latent cache: part {e.sha256[:12]} ({rows} samples) -> {e.dst}")

    manifest, _ = latent_cache.build(
        lambda: find_cache(cfg), lambda: missing_entries(cfg), encode, lambda: write_manifest(cfg)
    )
    return manifest


def write_manifest(cfg: TrainConfig) -> dict:
    """The version's manifest over its (now complete) entries; written last."""
    c = latents(cfg)
    ents = entries(cfg)
    rows, shapes = 0, {}
    for e in ents:
        with c.fs.open(e.dst, "rb") as f:
            meta = pq.read_metadata(f)
        rows += meta.num_rows
        shapes = json.loads(meta.metadata[SHAPES_KEY])
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
        "parts": [c.uri(e.dst) for e in ents],
        "part_sha256": [e.sha256 for e in ents],
    }
    return c.write_manifest(_manifest_name(cfg), manifest, indent=2)


def shapes_of(model: PbEModel, cfg: TrainConfig) -> dict:
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
    """Cache row bytes -> arrays (B, *shape), still in the stored dtype."""
    return {
        k: np.stack(
            [np.frombuffer(b, dtype=manifest["dtypes"][k]).reshape(manifest["shapes"][k]) for b in batch[k]]
        )
        for k in FIELDS
    }


def encoded_batch(arrays: dict, device: torch.device | str = "cpu") -> EncodedBatch:
    return EncodedBatch(**{k: torch.as_tensor(np.asarray(arrays[k])).to(device).float() for k in FIELDS})
