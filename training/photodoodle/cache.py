"""Encoded pairs of a small (artist) dataset version: VAE posteriors and text embeddings, computed once.

PhotoDoodle re-encodes every pair with the VAE and T5 at every step; for the 30-50 pairs of a style
that is wasted work and keeps T5-XXL (~9.5 GB) on the GPU. The cache holds, per pair, the VAE
posterior (mean, logvar) of source and target, so each step still draws `latent_dist.sample()`, and
the T5 sequence + pooled CLIP vector of every caption. It lives in the store, keyed by the dataset
version and what the encodings depend on (encoder weights, size, T5 length, artist), not by the
transformer, so every EditLoRA run of that version reuses it:

    cache/photodoodle/<dataset>/v<version>/<key>/encoded.safetensors   tensors
    cache/photodoodle/<dataset>/v<version>/<key>/cache.json            pair ids, caption index, sha; last
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch
from doodleflow.data.fsutil import atomic_write, filesystem, join
from doodleflow.training.common.checkpoint import sha256, tensors_from_bytes, tensors_to_bytes
from doodleflow.training.photodoodle.data import to_pixels
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.photodoodle.loss import EncodedBatch


@dataclass
class PairCache:
    pair_ids: list[str]
    source: torch.Tensor  # (N, 32, h, w) posterior moments of the "before" images
    target: torch.Tensor  # (N, 32, h, w) of the "after" images
    caption_index: list[list[int]]  # pair -> rows of embeds/pooled
    embeds: torch.Tensor  # (M, L, D) T5
    pooled: torch.Tensor  # (M, P) CLIP

    def __len__(self) -> int:
        return len(self.pair_ids)

    def subset(self, keep: list[int]) -> PairCache:
        """The pairs at `keep` (e.g. without the held-out ones); caption embeddings are shared."""
        return PairCache([self.pair_ids[i] for i in keep], self.source[keep], self.target[keep],
                         [self.caption_index[i] for i in keep], self.embeds, self.pooled)  # fmt: skip

    def batch(self, idx: list[int], model, generator: torch.Generator, device) -> EncodedBatch:
        """Samples `idx`: a caption drawn per sample, then fresh latent samples from the posteriors."""
        caps = [self.caption_index[i][int(torch.randint(len(self.caption_index[i]), (1,), generator=generator,
                                                        device=generator.device).item())] for i in idx]  # fmt: skip
        target = model.sample_latents(self.target[idx].to(device), generator)
        cond = model.sample_latents(self.source[idx].to(device), generator)
        return EncodedBatch(
            target, cond, TextCondition(self.embeds[caps].to(device), self.pooled[caps].to(device))
        )


def build_cache(model, arrays: dict, max_sequence_length: int, device, chunk: int = 4) -> PairCache:
    """Encode decoded pairs (`decode_pairs` output) on `device`."""
    caps = [json.loads(c) for c in arrays["captions"]]
    src, tgt = [], []
    for i in range(0, len(caps), chunk):
        src.append(model.vae_moments(to_pixels(arrays["source"][i : i + chunk], device)).float().cpu())
        tgt.append(model.vae_moments(to_pixels(arrays["target"][i : i + chunk], device)).float().cpu())
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
    return PairCache([str(p) for p in arrays["pair_id"]], torch.cat(src), torch.cat(tgt), index,
                     torch.cat(emb), torch.cat(pooled))  # fmt: skip


def cache_key(encoders: dict, height: int, width: int, max_sequence_length: int, artist: str | None) -> str:
    ident = {"encoders": encoders, "size": [height, width], "t5_len": max_sequence_length, "artist": artist}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(store: str, dataset: str, version: int, key: str) -> str:
    return join(filesystem(store)[1], "cache", "photodoodle", dataset, f"v{version:06d}", key)


def save_cache(store: str, path: str, cache: PairCache, meta: dict) -> None:
    fs, _ = filesystem(store)
    tensors = {"source": cache.source, "target": cache.target, "embeds": cache.embeds, "pooled": cache.pooled}
    data = tensors_to_bytes(tensors, {"format": "pt"})
    atomic_write(fs, join(path, "encoded.safetensors"), data)
    card = {**meta, "pair_ids": cache.pair_ids, "caption_index": cache.caption_index, "sha256": sha256(data)}
    atomic_write(fs, join(path, "cache.json"), json.dumps(card, sort_keys=True).encode())


def load_cache(store: str, path: str) -> PairCache | None:
    """The cache at `path`, or None if absent; a file that fails its hash is treated as absent."""
    fs, _ = filesystem(store)
    if not fs.exists(join(path, "cache.json")):
        return None
    card = json.loads(fs.cat_file(join(path, "cache.json")))
    data = fs.cat_file(join(path, "encoded.safetensors"))
    if sha256(data) != card["sha256"]:
        return None
    t = tensors_from_bytes(data)
    return PairCache(
        card["pair_ids"], t["source"], t["target"], card["caption_index"], t["embeds"], t["pooled"]
    )
