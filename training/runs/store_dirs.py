"""Directories of model files in the store (local path or s3://), uploaded with a marker file.

A directory counts as present iff its marker (a small JSON written last) exists, so readers never
pick up a half-uploaded model: locally the files are moved in by one rename of a temp sibling; on S3
they are uploaded first (multipart, streamed from disk) and the marker is one PUT afterwards.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import uuid

from doodleflow.data.fsutil import atomic_write, filesystem, is_local, join
from doodleflow.training.runs.seal import refuse_sealed


def upload_dir(src: str, store_uri: str, rel: str, marker: str, meta: dict) -> str:
    """Place the files of local dir `src` at `<store>/<rel>/` plus `marker` = meta; returns the URI."""
    fs, root = filesystem(store_uri)
    dest = join(root, rel)
    refuse_sealed(fs, dest, "publishing", stop=root)  # a registered version's files stay as registered
    if is_local(fs):
        tmp = f"{dest}.tmp-{uuid.uuid4().hex}"
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        shutil.copytree(src, tmp)
        readable_modes(tmp)
        if os.path.exists(dest):  # a retried upload of the same run replaces its earlier files
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    else:
        fs.put(src.rstrip("/") + "/", dest + "/", recursive=True)
    atomic_write(fs, join(dest, marker), json.dumps(meta, indent=2, sort_keys=True, default=str).encode())
    return f"s3://{dest}" if store_uri.startswith("s3://") else dest


def readable_modes(root: str) -> None:
    """Give an uploaded tree the modes of every other store file (0644/0755 under umask 022): it is
    copied from a private temporary dir (mkdtemp is 0700, some writers leave files 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for parent, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(parent, d), 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(parent, f), 0o666 & ~umask)


def read_marker(store_uri: str, rel: str, marker: str) -> dict | None:
    fs, root = filesystem(store_uri)
    p = join(root, rel, marker)
    return json.loads(fs.cat_file(p)) if fs.exists(p) else None


def list_uploaded(store_uri: str, rel: str, marker: str) -> list[dict]:
    """The markers of every uploaded directory directly under `<store>/<rel>/`, each with its
    `_uri` and `_name`, oldest `created_at` first."""
    fs, root = filesystem(store_uri)
    base = join(root, rel)
    if not fs.exists(base):
        return []
    out = []
    for p in fs.ls(base, detail=False):
        name = posixpath.basename(p.rstrip("/"))
        m = join(base, name, marker)
        if ".tmp-" not in name and fs.exists(m):
            meta = json.loads(fs.cat_file(m))
            uri = join(base, name)
            out.append(
                {**meta, "_name": name, "_uri": f"s3://{uri}" if store_uri.startswith("s3://") else uri}
            )
    return sorted(out, key=lambda d: (str(d.get("created_at", "")), d["_name"]))
