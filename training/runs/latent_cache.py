"""The one latent-cache mechanism of every family: a folder of the store, found by a key, whose entries
are written atomically and whose manifest is written last. No Ray, no model code.

A family says only what is its own: what its encodings depend on (the identity hashed into the key), its
encoder ("encode a batch of rows -> tensors": training/pbe/cache.py `encode_table`,
training/photodoodle/cache.py `build_cache`) and how the tensors are laid out in the entries. Each keeps
the layout its users' caches already have (a changed layout would re-encode every cache for nothing):

    Paint-by-Example  caches/pbe-latents/<dataset>/<key>/parts/<sha>.parquet    one entry per data part
                      caches/pbe-latents/<dataset>/<key>/v<version>/_manifest.json
    PhotoDoodle       cache/photodoodle/<dataset>/v<version>/<key>/encoded.safetensors
                      cache/photodoodle/<dataset>/v<version>/<key>/cache.json

The rule both follow: the manifest is written after every entry it names, so a cache with a manifest is
complete; a build killed before it leaves entries that the next build keeps (`build`) or rewrites.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from doodleflow.data.fsutil import atomic_write, filesystem, join
from doodleflow.training.core.checkpoint import sha256

T = TypeVar("T")


def cache_key(ident: dict, digits: int) -> str:
    """The key of a cache: a digest of everything its encodings depend on (encoders, preprocessing,
    format), so a different encoder or size never reads a stale cache."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:digits]


@dataclass(frozen=True)
class CacheDir:
    """One cache folder of a store: `path` is the store path (no scheme) of the folder."""

    store: str
    path: str

    @classmethod
    def at(cls, store: str, *parts: str) -> CacheDir:
        return cls(store, join(filesystem(store)[1], *parts))

    @property
    def fs(self):
        return filesystem(self.store)[0]

    def file(self, *name: str) -> str:
        """The store path of a file of the cache."""
        return join(self.path, *name)

    def uri(self, path: str) -> str:
        """A store path as readers outside fsspec (Ray Data) take it."""
        return f"s3://{path}" if self.store.startswith("s3://") else path

    def has(self, *name: str) -> bool:
        return self.fs.exists(self.file(*name))

    def write(self, name: str, data: bytes) -> None:
        """An entry, atomically (a killed writer leaves no half file)."""
        atomic_write(self.fs, self.file(name), data)

    def read(self, name: str) -> bytes:
        return self.fs.cat_file(self.file(name))

    def write_manifest(self, name: str, manifest: dict, indent: int | None = None) -> dict:
        """The manifest, last: its presence says every entry it names is written."""
        self.write(name, json.dumps(manifest, indent=indent, sort_keys=True).encode())
        return manifest

    def manifest(self, name: str) -> dict | None:
        """The complete cache's manifest, or None (never built, or a build that did not finish)."""
        return json.loads(self.read(name)) if self.has(name) else None


def write_verified(cache: CacheDir, data_name: str, data: bytes, manifest_name: str, meta: dict) -> dict:
    """A cache of one tensor file: the file, then the manifest holding its sha256 (`read_verified`)."""
    cache.write(data_name, data)
    return cache.write_manifest(manifest_name, {**meta, "sha256": sha256(data)})


def read_verified(cache: CacheDir, data_name: str, manifest_name: str) -> tuple[dict, bytes] | None:
    """(manifest, file) of a one-file cache, or None when absent or when the file fails its sha256 (a
    damaged cache is rebuilt, never trained on)."""
    manifest = cache.manifest(manifest_name)
    if manifest is None:
        return None
    data = cache.read(data_name)
    return (manifest, data) if sha256(data) == manifest["sha256"] else None


def build(
    find: Callable[[], T | None],
    missing: Callable[[], list],
    encode: Callable[[list], None],
    finish: Callable[[], T],
) -> tuple[T, int | None]:
    """(the cache, entries encoded; None when it was complete already): `find` gives the complete cache
    (its manifest, or what the family loads); else the entries without a file are encoded (`encode`: in
    this process, over a Ray pool (training/pbe/ray_cache.py), or in a training worker
    (training/photodoodle/batches.py)) and the manifest written (`finish`). Entries of an earlier build
    (or shared with another version) are kept."""
    found = find()
    if found is not None:
        return found, None
    todo = missing()
    if todo:
        encode(todo)
    return finish(), len(todo)
