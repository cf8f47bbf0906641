"""The frozen weights a registered artifact needs besides its own files, and their digests.

A PbE checkpoint holds only the trained weights: the VAE, the CLIP tower and (for a tiny model) the
rest come from its base directory, so "sha256-verified" must cover those files too. Big base files
are hashed once and the digest cached by (size, mtime) in $DOODLEFLOW_HOME/cache/sha256.json; a file
rewritten in place gets a new mtime and is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os

from doodleflow.data.fsutil import atomic_write, filesystem, is_local, join
from doodleflow.infra import settings
from doodleflow.infra.errors import TamperedArtifact


def base_dirs(kind: str, uri: str) -> list[str]:
    """Local or s3:// directories of the frozen weights that loading `uri` (of `kind`) reads: the
    family that makes `kind` knows where its artifacts name them (its `base_dirs` hook)."""
    from doodleflow.training.family import family_of_kind

    return family_of_kind(kind).hooks().base_dirs(kind, uri)


BASES = "bases.json"  # in a run directory: the base files every checkpoint of the run loads with


def record_run_bases(run, dirs: list[str]) -> None:
    """Write the digests of a run's base files (`dirs`) beside its run.json, once per run, so a
    checkpoint loaded by path (`generate pbe --checkpoint`, unregistered) is verified like a registered one."""
    if run.read_json(BASES) is None:
        run.write_json(BASES, base_digests(dirs))


def verify_run_bases(checkpoint_uri: str) -> bool:
    """Verify the base files recorded for the run `checkpoint_uri` belongs to; False if none were
    recorded (a run written before base digests existed)."""
    from doodleflow.training.runs.rundir import run_of_checkpoint  # torch: kept out of `registry list`

    fs, path = filesystem(checkpoint_uri)
    record = join(run_of_checkpoint(path), BASES)
    if not fs.exists(record):
        return False
    verify_bases(json.loads(fs.cat_file(record)))
    return True


def base_digests(dirs: list[str]) -> list[dict]:
    """[{"root": dir, "files": [{path, bytes, sha256}, ...]}] for each base directory."""
    return [{"root": d, "files": digests(d)} for d in dirs]


def verify_bases(bases: list[dict]) -> None:
    """Raise TamperedArtifact if a recorded base file is missing or its bytes changed."""
    for base in bases:
        have = {f["path"]: f["sha256"] for f in digests(base["root"])}
        for f in base["files"]:
            got = have.get(f["path"])
            if got is None:
                raise TamperedArtifact(f"base {base['root']}: {f['path']} is missing")
            if got != f["sha256"]:
                raise TamperedArtifact(
                    f"base {base['root']}: {f['path']} has sha256 {got[:16]}..., registered "
                    f"{f['sha256'][:16]}...: refusing to load a model on modified base weights"
                )


def digests(root_uri: str) -> list[dict]:
    """Every file under `root_uri` with its size and sha256, local digests cached by (size, mtime)."""
    fs, root = filesystem(root_uri)
    paths = sorted(p for p in fs.find(root) if fs.isfile(p))
    cache = _Cache() if is_local(fs) else None
    out = []
    for p in paths:
        digest = cache.get(p) if cache else None
        if digest is None:
            digest = _sha256(fs, p)
            if cache:
                cache.put(p, digest)
        out.append({"path": os.path.relpath(p, root), "bytes": fs.size(p), "sha256": digest})
    if cache:
        cache.save()
    return out


def _sha256(fs, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class _Cache:
    """sha256 of local files keyed by absolute path, valid while (size, mtime_ns) are unchanged."""

    def __init__(self) -> None:
        self.path = os.path.join(settings.home(), "cache", "sha256.json")
        try:
            with open(self.path) as f:
                self.entries = json.load(f)
        except (FileNotFoundError, ValueError):
            self.entries = {}
        self.dirty = False

    @staticmethod
    def _key(path: str) -> list[int]:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def get(self, path: str) -> str | None:
        e = self.entries.get(path)
        return e["sha256"] if e and e["stat"] == self._key(path) else None

    def put(self, path: str, digest: str) -> None:
        self.entries[path] = {"stat": self._key(path), "sha256": digest}
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            fs, _ = filesystem(self.path)
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            atomic_write(fs, self.path, json.dumps(self.entries, sort_keys=True).encode())
