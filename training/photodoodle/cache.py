"""Encoded pairs of a small (artist) dataset version: VAE posteriors and text embeddings, computed once.

PhotoDoodle re-encodes every pair with the VAE and T5 at every step; for the 30-50 pairs of a style
that is wasted work and keeps T5-XXL (~9.5 GB) on the GPU. The cache holds, per pair, the VAE
posterior (mean, logvar) of source and target at the pair's bucket, so each step still draws
`latent_dist.sample()`, and the T5 sequence + pooled CLIP vector of every caption. It lives in the store, keyed by the dataset
version and what the encodings depend on (encoder weights, buckets, T5 length, artist), not by the
transformer, so every EditLoRA run of that version reuses it:

    cache/photodoodle/<dataset>/v<version>/<key>/encoded.safetensors   tensors
    cache/photodoodle/<dataset>/v<version>/<key>/cache.json            pair ids, caption index, sha; last

Key, folder, atomic writes, the manifest written last and the sha256 check on load are the shared
mechanism (training/runs/latent_cache.py); this module is what is PhotoDoodle's: the encoder
(`build_cache`) and the one-file tensor layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from doodleflow.training.core.checkpoint import tensors_from_bytes, tensors_to_bytes
from doodleflow.training.photodoodle.buckets import Buckets
from doodleflow.training.photodoodle.data import stacked, to_pixels
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.photodoodle.loss import EncodedBatch
from doodleflow.training.runs import latent_cache
from doodleflow.training.runs.latent_cache import CacheDir


@dataclass
class PairCache:
    pair_ids: list[str]
    source: list[torch.Tensor]  # per pair (32, h, w): posterior moments of the "before" image, at its bucket
    target: list[torch.Tensor]  # per pair (32, h, w): of the "after" image
    caption_index: list[list[int]]  # pair -> rows of embeds/pooled
    embeds: torch.Tensor  # (M, L, D) T5
    pooled: torch.Tensor  # (M, P) CLIP

    def __len__(self) -> int:
        return len(self.pair_ids)

    def bucket(self, i: int) -> tuple[int, int]:
        """Pair i's latent size (h, w): its bucket / 8."""
        return tuple(self.source[i].shape[-2:])

    def subset(self, keep: list[int]) -> PairCache:
        """The pairs at `keep` (e.g. without the held-out ones); caption embeddings are shared."""
        return PairCache([self.pair_ids[i] for i in keep], [self.source[i] for i in keep],
                         [self.target[i] for i in keep], [self.caption_index[i] for i in keep],
                         self.embeds, self.pooled)  # fmt: skip

    def batch(self, idx: list[int], model, generator: torch.Generator, device) -> EncodedBatch:
        """Samples `idx` (one bucket): a caption drawn per sample, then fresh latent samples from the posteriors."""
        caps = [self.caption_index[i][int(torch.randint(len(self.caption_index[i]), (1,), generator=generator,
                                                        device=generator.device).item())] for i in idx]  # fmt: skip
        target = model.sample_latents(torch.stack([self.target[i] for i in idx]).to(device), generator)
        cond = model.sample_latents(torch.stack([self.source[i] for i in idx]).to(device), generator)
        return EncodedBatch(
            target, cond, TextCondition(self.embeds[caps].to(device), self.pooled[caps].to(device))
        )


def _moments(model, arrays: dict, key: str, device, chunk: int) -> list[torch.Tensor]:
    """VAE moments of every pair's `key` image, encoded in chunks of one size."""
    n = len(arrays["pair_id"])
    by_size: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        by_size.setdefault((int(arrays["height"][i]), int(arrays["width"][i])), []).append(i)
    out: list[torch.Tensor | None] = [None] * n
    for rows in by_size.values():
        for k in range(0, len(rows), chunk):
            part = rows[k : k + chunk]
            m = model.vae_moments(to_pixels(stacked(arrays, key, part), device)).float().cpu()
            for j, i in enumerate(part):
                out[i] = m[j].clone()  # its own storage: safetensors refuses shared tensors
    return out


def build_cache(model, arrays: dict, max_sequence_length: int, device, chunk: int = 4) -> PairCache:
    """Encode decoded pairs (`decode_pairs` output) on `device`."""
    caps = [json.loads(c) for c in arrays["captions"]]
    src = _moments(model, arrays, "source", device, chunk)
    tgt = _moments(model, arrays, "target", device, chunk)
    flat = [c for cs in caps for c in cs]
    index, k = [], 0
    for cs in caps:
        index.append(list(range(k, k + len(cs))))
        k += len(cs)
    emb, pooled = [], []
    for i in range(0, len(flat), chunk):
        e, p = model.encode_text(flat[i : i + chunk], max_sequence_length)
        emb.append(e.cpu())
        pooled.append(p.cpu())
    return PairCache([str(p) for p in arrays["pair_id"]], src, tgt, index, torch.cat(emb), torch.cat(pooled))


def cache_key(encoders: dict, buckets: Buckets, max_sequence_length: int, artist: str | None) -> str:
    ident = {"encoders": encoders, "budget": buckets.budget, "sizes": [list(s) for s in buckets.sizes],
             "t5_len": max_sequence_length, "artist": artist, "layout": 2}  # fmt: skip
    return latent_cache.cache_key(ident, 16)


def cache_path(store: str, dataset: str, version: int, key: str) -> str:
    return CacheDir.at(store, "cache", "photodoodle", dataset, f"v{version:06d}", key).path


DATA, CARD = "encoded.safetensors", "cache.json"


def save_cache(store: str, path: str, cache: PairCache, meta: dict) -> None:
    tensors = {"embeds": cache.embeds, "pooled": cache.pooled}
    for i in range(len(cache)):  # one tensor per pair: pairs of different buckets differ in shape
        tensors[f"source/{i}"], tensors[f"target/{i}"] = cache.source[i], cache.target[i]
    data = tensors_to_bytes(tensors, {"format": "pt"})
    card = {**meta, "pair_ids": cache.pair_ids, "caption_index": cache.caption_index}
    latent_cache.write_verified(CacheDir(store, path), DATA, data, CARD, card)


def load_cache(store: str, path: str) -> PairCache | None:
    """The cache at `path`, or None if absent; a file that fails its hash is treated as absent."""
    found = latent_cache.read_verified(CacheDir(store, path), DATA, CARD)
    if found is None:
        return None
    card, data = found
    t = tensors_from_bytes(data)
    n = len(card["pair_ids"])
    return PairCache(card["pair_ids"], [t[f"source/{i}"] for i in range(n)], [t[f"target/{i}"] for i in range(n)],
                     card["caption_index"], t["embeds"], t["pooled"])  # fmt: skip
