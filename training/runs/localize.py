"""A local directory for a store URI: diffusers and transformers load from local paths only.

Local paths are used in place. An s3:// directory is copied once into $DOODLEFLOW_HOME/cache/ under a
name derived from its URI and built atomically (a half-finished copy is never picked up).
"""

from __future__ import annotations

import hashlib
import os

from doodleflow.data.fsutil import filesystem
from doodleflow.infra.settings import home
from doodleflow.training.runs.atomic_dir import build_atomically


def cache_root() -> str:
    return os.path.join(home(), "cache", "store")


def local_dir(uri: str, marker: str = "config.json") -> str:
    """`uri` itself when local; otherwise a local copy of the directory (made once per URI)."""
    if not uri.startswith("s3://"):
        return filesystem(uri)[1]
    fs, path = filesystem(uri)

    def build(tmp: str) -> None:
        fs.get(path.rstrip("/") + "/", tmp + "/", recursive=True)

    name = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return build_atomically(build, os.path.join(cache_root(), name), marker)


def local_file(uri: str) -> str:
    """`uri` itself when local; otherwise a local copy of the file (made once per URI)."""
    if not uri.startswith("s3://"):
        return filesystem(uri)[1]
    fs, path = filesystem(uri)
    name = os.path.basename(path)

    def build(tmp: str) -> None:
        os.makedirs(tmp, exist_ok=True)
        fs.get(path, os.path.join(tmp, name))

    d = build_atomically(
        build, os.path.join(cache_root(), hashlib.sha256(uri.encode()).hexdigest()[:16]), name
    )
    return os.path.join(d, name)
