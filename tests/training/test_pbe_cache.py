"""The latent cache: same inputs to the loss as encoding on the fly, keyed by encoders, resumable."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest
import torch
from doodleflow.data.store import DatasetStore
from doodleflow.training.pbe.cache import (
    build_latent_cache,
    cache_dir,
    cache_key,
    decode_cached,
    encoded_batch,
    find_cache,
)
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.pbe.data import SAMPLE_COLUMNS, decode_rows, pixel_batch
from doodleflow.training.pbe.model import load_pbe_dir
from doodleflow.training.pbe.trainer import PbETrainer

from .datasets import make_version


@pytest.fixture(scope="module")
def cached(tmp_path_factory, tiny_dir, models_root):
    root = tmp_path_factory.mktemp("cache")
    store = str(root / "store")
    version = make_version(str(root), store, "cached", n_images=12)
    cfg = TrainConfig().replace(
        model={"source": ModelSource(kind="tiny", tiny_root=models_root)},
        data={"resolution": 128},
        run={"store": store, "dataset": "cached", "version": version},
    )
    model = load_pbe_dir(tiny_dir)
    assert find_cache(cfg) is None
    manifest = build_latent_cache(model, cfg, batch_size=5, log=lambda m: None)
    return cfg, model, manifest


def _cache_rows(manifest: dict) -> dict:
    tables = [pq.read_table(p) for p in manifest["parts"]]
    out = {}
    for t in tables:
        arrays = decode_cached(t.to_pydict(), manifest)
        for i, sid in enumerate(t.column("sample_id").to_pylist()):
            out[sid] = {k: v[i] for k, v in arrays.items()}
    return out


def test_cache_covers_the_version_with_model_shapes(cached):
    cfg, _, manifest = cached
    rows = DatasetStore(cfg.run.store, cfg.run.dataset).manifest(cfg.run.version)["rows_total"]
    assert manifest["rows"] == rows == 12 and len(manifest["parts"]) == 2
    assert manifest["shapes"] == {
        "target_moments": [8, 16, 16],
        "masked_moments": [8, 16, 16],
        "mask_latent": [1, 16, 16],
        "clip_pooled": [32],
    }
    assert find_cache(cfg) == manifest
    # Another resolution or other encoders never read this cache.
    assert cache_key(cfg.replace(data={"resolution": 256})) != manifest["key"]
    assert cache_key(cfg.replace(model={"source": ModelSource(kind="tiny", seed=1)})) != manifest["key"]


def test_training_from_the_cache_sees_what_encoding_on_the_fly_sees(cached):
    cfg, model, manifest = cached
    table = DatasetStore(cfg.run.store, cfg.run.dataset).read_table(
        cfg.run.version, ["sample_id", *SAMPLE_COLUMNS]
    )
    rows = table.slice(0, 4).to_pydict()
    cache = _cache_rows(manifest)
    from_cache = encoded_batch(
        {
            k: torch.stack([torch.as_tensor(cache[s][k]) for s in rows["sample_id"]])
            for k in manifest["dtypes"]
        }
    )
    trainer = PbETrainer(model, cfg)
    live = trainer.encode(pixel_batch(decode_rows(rows, 128, 224)))
    for k in manifest["dtypes"]:
        a, b = getattr(from_cache, k), getattr(live, k)
        assert torch.allclose(a, b, atol=2e-2, rtol=2e-3), k  # fp16 storage of the moments
    with torch.no_grad():
        losses = [(float(trainer.loss(from_cache, s)), float(trainer.loss(live, s))) for s in range(3)]
    assert all(abs(a - b) < 1e-2 * b for a, b in losses), losses


def test_an_interrupted_build_resumes_part_by_part(cached):
    cfg, model, manifest = cached
    fs, d = cache_dir(cfg)
    first, second = manifest["parts"]
    mtime = os.path.getmtime(first)
    fs.rm(f"{d}/_manifest.json")  # killed before the manifest: the cache does not exist yet
    fs.rm(second)
    assert find_cache(cfg) is None
    again = build_latent_cache(model, cfg, batch_size=5, log=lambda m: None)
    assert again == manifest and os.path.getmtime(first) == mtime  # only the missing part was encoded
