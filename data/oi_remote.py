"""Where OpenImages lives and how its bytes are read: the official file names, the public bucket with
anonymous (unsigned) S3 requests, any s3:// mirror, a local mirror, or https.

Official layout (OpenImages V6/V7 download page, storage.googleapis.com/openimages/web/download_v7.html):
the annotation files are served over https from `storage.googleapis.com/openimages/`, the boxable
images by the CVDF from the public bucket `s3://open-images-dataset/<split>/<ImageID>.jpg`
(cvdfoundation/open-images-dataset README.md: "aws s3 --no-sign-request sync
s3://open-images-dataset/train ..."). A mirror keeps the same layout: the annotation files by their
official base names at its root (or under `annotations/`), the images under `<split>/`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import BinaryIO

from doodleflow.data.errors import ConfigError, InputError
from doodleflow.data.fsutil import s3_endpoint
from doodleflow.infra.errors import TransientError

PUBLIC_BUCKET = "s3://open-images-dataset"
OFFICIAL = "https://storage.googleapis.com/openimages"
SPLITS = ("train", "validation", "test")
CLASS_FILE = "class-descriptions-boxable.csv"
# split -> (bbox annotations, image index with OriginalSize / OriginalMD5 / Rotation), official names
FILES = {
    "train": ("oidv6-train-annotations-bbox.csv", "train-images-boxable-with-rotation.csv"),
    "validation": ("validation-annotations-bbox.csv", "validation-images-with-rotation.csv"),
    "test": ("test-annotations-bbox.csv", "test-images-with-rotation.csv"),
}
# Where the official https server keeps each file (the V6 download page's links).
OFFICIAL_PATHS = {
    CLASS_FILE: "v5/class-descriptions-boxable.csv",
    "oidv6-train-annotations-bbox.csv": "v6/oidv6-train-annotations-bbox.csv",
    "validation-annotations-bbox.csv": "v5/validation-annotations-bbox.csv",
    "test-annotations-bbox.csv": "v5/test-annotations-bbox.csv",
    "train-images-boxable-with-rotation.csv": "2018_04/train/train-images-boxable-with-rotation.csv",
    "validation-images-with-rotation.csv": "2018_04/validation/validation-images-with-rotation.csv",
    "test-images-with-rotation.csv": "2018_04/test/test-images-with-rotation.csv",
}
CHUNK = 1 << 20


class Missing(Exception):
    """The object or file does not exist at the source (permanent: never retried)."""


class Forbidden(Exception):
    """The source refuses the request (403: a private bucket read unsigned, wrong credentials):
    permanent for this run, never retried."""


def check_uri(uri: str, flag: str) -> None:
    if uri.startswith(("s3://", "https://", "http://")):
        return
    if "://" in uri:
        raise ConfigError(f"{flag} {uri}: use s3://bucket/prefix, https://... or a local directory")
    if not os.path.isdir(uri):
        raise ConfigError(f"{flag} {uri}: no such directory")


_clients: dict[tuple[str | None, bool], object] = {}
_lock = threading.Lock()


def s3_client(anonymous: bool, pool: int = 64):
    """One boto3 client per (endpoint, anonymous) in this process; boto3 clients are thread-safe.
    Anonymous requests are unsigned (botocore.UNSIGNED): no credential is looked up or sent."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    key = (s3_endpoint(), anonymous)
    with _lock:
        if key not in _clients:
            cfg = Config(
                max_pool_connections=pool,
                retries={"max_attempts": 2, "mode": "standard"},
                **({"signature_version": UNSIGNED} if anonymous else {}),
            )
            kw = {"endpoint_url": key[0]} if key[0] else {}
            region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"  # the public bucket's region
            _clients[key] = boto3.client("s3", region_name=region, config=cfg, **kw)
        return _clients[key]


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def join_uri(base: str, *parts: str) -> str:
    if "://" in base:
        return posixpath.join(base.rstrip("/"), *parts)
    return os.path.join(base, *parts)


def annotation_uri(base: str | None, name: str) -> list[str]:
    """Where to look for one annotation file: the official URL, or the mirror's root then annotations/."""
    if base is None:
        return [f"{OFFICIAL}/{OFFICIAL_PATHS[name]}"]
    return [join_uri(base, name), join_uri(base, "annotations", name)]


@contextlib.contextmanager
def open_stream(uri: str, anonymous: bool) -> Iterator[tuple[BinaryIO, int | None, str | None]]:
    """(readable with .read(n), size or None, S3 ETag or None); raises Missing when it is not there."""
    if uri.startswith("s3://"):
        bucket, key = split_s3(uri)
        client = s3_client(anonymous)
        try:
            r = client.get_object(Bucket=bucket, Key=key)
        except client.exceptions.NoSuchKey as e:
            raise Missing(f"{uri}: no such object") from e
        except Exception as e:  # a 404 without the NoSuchKey code (some mirrors), or a 403
            code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise Missing(f"{uri}: no such object") from e
            if code in ("403", "AccessDenied", "Forbidden"):
                how = "unsigned" if anonymous else "signed with the environment's credentials"
                raise Forbidden(f"{uri}: access denied to a request {how}") from e
            raise
        body = r["Body"]
        try:
            yield body, int(r["ContentLength"]), str(r.get("ETag", "")).strip('"') or None
        finally:
            body.close()
    elif uri.startswith(("https://", "http://")):
        try:
            resp = urllib.request.urlopen(uri, timeout=60)  # https:// or http:// (checked above)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise Missing(f"{uri}: HTTP 404") from e
            raise
        with resp:
            n = resp.headers.get("Content-Length")
            yield resp, int(n) if n else None, None
    else:
        try:
            f = open(uri, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError as e:
            raise Missing(f"{uri}: no such file") from e
        with f:
            yield f, os.fstat(f.fileno()).st_size, None


def copy_to(uri: str, dest: str, anonymous: bool) -> int:
    """Stream one file to `dest` atomically (temp file + rename); returns its size."""
    from doodleflow.data.fsutil import temp_beside

    with open_stream(uri, anonymous) as (src, size, _), temp_beside(dest) as tmp:
        n = 0
        with open(tmp, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                n += len(chunk)
        if size is not None and n != size:
            raise OSError(f"{uri}: got {n} of {size} bytes")
        os.replace(tmp, dest)
    return n


def fetch_annotation(base: str | None, name: str, dest_dir: str, anonymous: bool) -> str:
    """One annotation file into `dest_dir` (kept when already there: the files are immutable)."""
    dest = os.path.join(dest_dir, name)
    if os.path.isfile(dest) and os.path.getsize(dest) > 0:
        return dest
    tried = annotation_uri(base, name)
    for uri in tried:
        try:
            copy_to(uri, dest, anonymous)
            return dest
        except Missing:
            continue
        except Forbidden as e:
            raise ConfigError(f"{e} (--anonymous / --no-anonymous choose)") from e
        except (OSError, urllib.error.URLError) as e:  # unreachable, reset: may pass
            raise TransientError(f"{name}: cannot fetch {uri}: {e}") from e
    raise InputError(f"{name}: not found at {' or '.join(tried)}")
