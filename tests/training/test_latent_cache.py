"""The one latent-cache mechanism (training/runs/latent_cache.py) on a real local store: a manifest
written last marks a complete cache, a damaged file is never loaded, a build encodes only what lacks
an entry. (Each family's cache on top of it: test_pbe_cache*.py, tests/photodoodle/test_train.py.)"""

from __future__ import annotations

import os

from doodleflow.training.runs import latent_cache
from doodleflow.training.runs.latent_cache import CacheDir


def test_the_key_follows_every_field_of_the_identity_and_nothing_else():
    a = latent_cache.cache_key({"encoders": "x", "resolution": 512}, 12)
    assert a == latent_cache.cache_key({"resolution": 512, "encoders": "x"}, 12) and len(a) == 12
    assert a != latent_cache.cache_key({"encoders": "x", "resolution": 256}, 12)


def test_a_cache_is_found_once_its_manifest_is_written(tmp_path):
    c = CacheDir.at(str(tmp_path), "caches", "fam", "ds", "k")
    assert c.path == os.path.join(str(tmp_path), "caches", "fam", "ds", "k")
    c.write("parts/a.bin", b"entry")
    assert c.has("parts/a.bin") and c.manifest("v1/_manifest.json") is None  # entries alone: not complete
    c.write_manifest("v1/_manifest.json", {"rows": 1}, indent=2)
    assert c.manifest("v1/_manifest.json") == {"rows": 1}
    assert c.read("v1/_manifest.json") == b'{\n  "rows": 1\n}'
    assert not [n for n in os.listdir(c.file("parts")) if ".tmp" in n]  # atomic: no temporary left


def test_a_damaged_one_file_cache_reads_as_absent(tmp_path):
    c = CacheDir.at(str(tmp_path), "cache", "fam", "k")
    assert latent_cache.read_verified(c, "t.bin", "card.json") is None
    card = latent_cache.write_verified(c, "t.bin", b"tensors", "card.json", {"pairs": 2})
    assert latent_cache.read_verified(c, "t.bin", "card.json") == (card, b"tensors")
    c.write("t.bin", b"tensorz")  # bit rot, or a writer that lost a race
    assert latent_cache.read_verified(c, "t.bin", "card.json") is None


def test_a_build_encodes_only_the_missing_entries_and_a_complete_cache_none(tmp_path):
    c = CacheDir.at(str(tmp_path), "caches", "k")
    c.write("a", b"kept from an interrupted build")
    encoded: list[list[str]] = []

    def run() -> tuple[dict, int | None]:
        return latent_cache.build(
            lambda: c.manifest("m.json"),
            lambda: [n for n in ("a", "b", "c") if not c.has(n)],
            lambda todo: encoded.append(todo) or [c.write(n, b"new") for n in todo],
            lambda: c.write_manifest("m.json", {"entries": ["a", "b", "c"]}),
        )

    assert run() == ({"entries": ["a", "b", "c"]}, 2) and encoded == [["b", "c"]]
    assert c.read("a") == b"kept from an interrupted build"
    assert run() == ({"entries": ["a", "b", "c"]}, None) and encoded == [["b", "c"]]  # found: nothing encoded
