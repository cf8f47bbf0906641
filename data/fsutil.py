"""Filesystem access for local paths and s3:// URIs, with the write primitives the store relies on.

- `atomic_write`: readers never see a half-written file (local: temp file + rename; S3: one PUT or a
  multipart upload, which S3 only makes visible once complete).
- `create_exclusive`: create-if-absent, the commit point of a dataset version.
- `link_or_copy`: carry an immutable file into a new version without moving its bytes (hard link on
  local disk, server-side copy on S3).
- A failed local write removes its temporary file; a full disk raises StorageFull (one line, not
  retried); `sweep_temporary` removes what a killed writer left.

S3 settings come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL[_S3]); credentials are never logged or stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import time
import uuid
from functools import lru_cache

import fsspec
from doodleflow.infra.errors import ConfigError, StorageFull, disk_full, is_disk_full
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


# Temporary files are named after their writer, `<name>.tmp-<host>-<pid>-<random>`, so that a sweep can
# tell a dead writer's leftovers (a SIGKILL, a crash) from a live concurrent writer's file.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TMP = re.compile(r"\.tmp-(?:([0-9a-f]{8})-(\d+)-)?[0-9a-f]+$")
LEGACY_TMP_AGE = 600.0  # seconds; a temp file without a writer in its name is stale after this
MAX_TMP_AGE = 86400.0  # and any temp file after this


@contextlib.contextmanager
def temp_beside(path: str):
    """A temporary file next to `path`: removed if anything fails (a full disk included), and a full
    disk becomes one StorageFull naming the path instead of an OSError traceback."""
    tmp = f"{path}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        with on_full_disk(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # renamed or linked into place on success, a partial file on failure


@contextlib.contextmanager
def on_full_disk(where: str):
    """Turn "no space left on device" (ENOSPC, EDQUOT) into StorageFull (permanent: not retried)."""
    try:
        yield
    except OSError as e:
        if is_disk_full(e) and not isinstance(e, StorageFull):
            raise disk_full(e, where) from e
        raise


def _write_file(tmp: str, data: bytes, sync: bool) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    with temp_beside(path) as tmp:
        _write_file(tmp, data, sync=True)
        os.replace(tmp, path)


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Write `path` only if it does not exist; True if this call created it."""
    if not is_local(fs):
        return _s3_put_if_absent(fs, path, data)
    with temp_beside(path) as tmp:
        _write_file(tmp, data, sync=False)
        try:
            os.link(tmp, path)  # link() fails if the name exists: atomic create-if-absent with full content
            return True
        except FileExistsError:
            return False


def sweep_temporary(folders: list[str], now: float | None = None) -> list[str]:
    """Remove the temporary files a dead writer left in `folders` (local paths; one level, no
    recursion): ours whose process is gone, and nameless ones older than LEGACY_TMP_AGE. A live
    writer's files stay. Returns the paths removed."""
    now = time.time() if now is None else now
    removed = []
    for folder in folders:
        for path, stale in _temporaries(folder, now):
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
    return removed


def live_temporary(folder: str) -> bool:
    """Whether `folder` (local) holds a temporary file of a live writer: a write is under way there."""
    return any(not stale for _, stale in _temporaries(folder, time.time()))


def _temporaries(folder: str, now: float):
    """(path, stale) for each temporary file in `folder`; one that vanishes meanwhile is skipped."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as entries:
        for entry in entries:
            m = _TMP.search(entry.name)
            if m:
                try:
                    if entry.is_file(follow_symlinks=False):
                        yield entry.path, _is_stale(m, entry, now)
                except FileNotFoundError:  # renamed into place or removed by its writer
                    continue


def _is_stale(m: re.Match, entry: os.DirEntry, now: float) -> bool:
    host, pid = m.group(1), m.group(2)
    age = now - entry.stat(follow_symlinks=False).st_mtime
    if host is None or host != _HOST:  # no writer recorded, or another machine's: judge by age
        return age > LEGACY_TMP_AGE
    if age > MAX_TMP_AGE:  # no write takes this long: the pid was reused
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _s3_put_if_absent(fs, path: str, data: bytes) -> bool:
    """S3 conditional write (If-None-Match: *); s3fs maps the 412 answer to FileExistsError."""
    bucket, _, key = path.partition("/")
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except FileExistsError:
        return False


def link_or_copy(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> None:
    if not is_local(fs):
        fs.copy(src, dst)
        return
    with temp_beside(dst) as tmp:
        if os.path.exists(dst):
            os.unlink(dst)
        try:
            os.link(src, dst)
        except OSError as e:
            if is_disk_full(e):
                raise
            shutil.copyfile(src, tmp)  # another filesystem: copy the bytes
            os.replace(tmp, dst)
