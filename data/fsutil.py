"""Filesystem access for local paths and s3:// URIs, with the write primitives the store relies on.

- `atomic_write`: readers never see a half-written file (local: temp file + rename; S3: one PUT or a
  multipart upload, which S3 only makes visible once complete).
- `create_exclusive`: create-if-absent, the commit point of a dataset version.
- `link_or_copy`: carry an immutable file into a new version without moving its bytes (hard link on
  local disk, server-side copy on S3).

S3 settings come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL[_S3]); credentials are never logged or stored.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache

import fsspec
from doodleflow.infra.errors import ConfigError
from fsspec.implementations.local import LocalFileSystem


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


@lru_cache(maxsize=8)
def _s3fs(endpoint: str | None):
    kwargs = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    # Listings are cached by s3fs; versions are discovered by listing, so never trust a stale one.
    return fsspec.filesystem("s3", use_listings_cache=False, skip_instance_cache=True, **kwargs)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path-within-it) for a local path or an s3:// URI."""
    if uri.startswith("s3://"):
        return _s3fs(s3_endpoint()), uri[len("s3://") :].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"unsupported store URI {uri!r}: use a local path or s3://bucket/prefix")
    return LocalFileSystem(), os.path.abspath(uri.removeprefix("file://"))


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p)


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    if is_local(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Write `path` only if it does not exist; True if this call created it."""
    if is_local(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)  # link() fails if the name exists: atomic create-if-absent with full content
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    return _s3_put_if_absent(fs, path, data)


def _s3_put_if_absent(fs, path: str, data: bytes) -> bool:
    """S3 conditional write (If-None-Match: *); s3fs maps the 412 answer to FileExistsError."""
    bucket, _, key = path.partition("/")
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except FileExistsError:
        return False


def link_or_copy(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> None:
    if is_local(fs):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.exists(dst):
            os.unlink(dst)
        try:
            os.link(src, dst)
        except OSError:
            import shutil

            tmp = f"{dst}.tmp-{uuid.uuid4().hex}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    else:
        fs.copy(src, dst)
