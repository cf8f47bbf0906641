"""What a registered version records about where it came from."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess

from doodleflow.data.fsutil import filesystem, join
from doodleflow.infra.errors import NotFoundError, TamperedArtifact

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def code_version() -> dict:
    """The git commit of this checkout and whether it has uncommitted changes ('unknown' outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD") or "unknown"
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", False
    return {"git_commit": commit, "git_dirty": dirty}


def file_digests(root_uri: str) -> list[dict]:
    """Every file under an artifact folder (or the one file) with its size and sha256."""
    fs, root = filesystem(root_uri)
    paths = [root] if fs.isfile(root) else sorted(p for p in fs.find(root) if fs.isfile(p))
    if not paths:
        raise NotFoundError(f"no files under {root_uri}: nothing to register")
    out = []
    for p in paths:
        h = hashlib.sha256()
        with fs.open(p, "rb") as f:
            for chunk in iter(functools.partial(f.read, 1 << 22), b""):
                h.update(chunk)
        rel = os.path.relpath(p, root) if p != root else os.path.basename(p)
        out.append({"path": rel, "bytes": fs.size(p), "sha256": h.hexdigest()})
    return out


def verify_files(root_uri: str, expected: list[dict]) -> None:
    """Raise if any registered file is missing or its bytes changed."""
    fs, root = filesystem(root_uri)
    is_file = fs.isfile(root)
    for f in expected:
        path = root if is_file else join(root, f["path"])
        if not fs.exists(path):
            raise TamperedArtifact(f"{root_uri}: registered file {f['path']} is missing")
        h = hashlib.sha256()
        with fs.open(path, "rb") as fh:
            for chunk in iter(functools.partial(fh.read, 1 << 22), b""):
                h.update(chunk)
        if h.hexdigest() != f["sha256"]:
            raise TamperedArtifact(
                f"{root_uri}: {f['path']} has sha256 {h.hexdigest()[:16]}..., registered "
                f"{f['sha256'][:16]}...: refusing to load a modified artifact"
            )
