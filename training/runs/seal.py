"""A registered version's files are immutable: a seal beside them, and the writers that check it.

Registering `<dir>` (training/registry/registry.py) writes `<dir>.registered.json` next to it, naming
the version. Every writer that can rewrite a saved folder checks for a seal on the folder or any
folder above it first: publishing a LoRA or merged base over an existing one
(training/runs/store_dirs.py), writing or pruning a run's checkpoint (training/runs/rundir.py).
A sealed write is refused with one line naming the version; a sealed checkpoint is kept, not pruned.
The seal is a file beside the artifact rather than inside it, so the registered file list (every
file under the folder) stays what was hashed. Root ignores file modes, so read-only files would not
do, and an s3:// store has none.
"""

from __future__ import annotations

import json
import posixpath

from doodleflow.data.fsutil import atomic_write, filesystem
from doodleflow.infra.errors import ConfigError

SUFFIX = ".registered.json"


def seal_path(path: str) -> str:
    return path.rstrip("/") + SUFFIX


def write_seal(uri: str, name: str, version: int) -> None:
    """Mark the files at `uri` as registered version `name:version` (several versions may share them)."""
    fs, path = filesystem(uri)
    seal = seal_path(path)
    versions = read_seal(fs, path) or []
    if f"{name}:{version}" not in versions:
        versions.append(f"{name}:{version}")
    atomic_write(fs, seal, json.dumps({"versions": versions}, indent=2).encode())


def read_seal(fs, path: str) -> list[str] | None:
    seal = seal_path(path)
    if not fs.exists(seal):
        return None
    return list(json.loads(fs.cat_file(seal)).get("versions", []))


def sealed_by(fs, path: str, stop: str | None = None) -> tuple[str, list[str]] | None:
    """(sealed folder, its versions) if `path` or a folder above it (up to `stop`) is registered."""
    p = path.rstrip("/")
    while p and p not in ("/", ".") and p != (stop or "").rstrip("/"):
        versions = read_seal(fs, p)
        if versions is not None:
            return p, versions
        parent = posixpath.dirname(p)
        if parent == p:
            break
        p = parent
    return None


def refuse_sealed(fs, path: str, what: str, stop: str | None = None) -> None:
    """ConfigError if `path` lies in a registered version's files (checked up to the folder `stop`)."""
    hit = sealed_by(fs, path, stop)
    if hit is not None:
        folder, versions = hit
        raise ConfigError(
            f"{what} {path}: refused, {folder} holds the files of registered version(s) "
            f"{', '.join(versions)}, which are never rewritten; train a new run (--run-name NAME)"
        )


def is_sealed(uri: str) -> bool:
    fs, path = filesystem(uri)
    return read_seal(fs, path) is not None
