"""Download one chunk of OpenImages images: verified, atomic, resumable, in threads.

Each image is streamed (1 MiB reads) into a temporary file beside `images/<split>/<ImageID>.jpg`
while its MD5 is computed, checked against what it must be, and only then renamed into place: a
reader (a refresh, a rerun) never sees a half-written or unverified file, and a killed run leaves at
most temporary files (removed by the next run's sweep, data/fsutil.py). What it must be:

- `index`: OriginalSize and OriginalMD5 of the image index (a mirror of the original files);
- `etag`: the response's Content-Length and, for a single-part object, its ETag (S3's ETag of such
  an object is the hex MD5 of its bytes). The CVDF's public bucket holds copies rescaled to at most
  1024 px on the long side (cvdfoundation/open-images-dataset README.md), so their bytes are not the
  originals' and the index's size and MD5 cannot match them.

A file already in place is kept without downloading when its size and MD5 are what they must be
(`index`: from the index, no request; `etag`: from a HEAD request). A missing object is listed at
once; a failed or mismatching download is retried, then listed with its reason.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow.parquet as pq
from doodleflow.data.faults import delay
from doodleflow.data.fsutil import temp_beside
from doodleflow.data.oi_remote import CHUNK, Forbidden, Missing, join_uri, open_stream, s3_client, split_s3

REASONS = ("missing", "size_mismatch", "md5_mismatch", "error")


@dataclass(frozen=True)
class DownloadConfig:
    images_from: str  # s3://bucket[/prefix], a local directory, or https://
    dest: str  # the images root refresh reads: files go to <dest>/<split>/<ImageID>.jpg
    split: str
    verify: str  # "index" or "etag"
    anonymous: bool
    threads: int = 16
    retries: int = 2
    backoff_s: float = 0.2


@dataclass
class Outcome:
    image_id: str
    status: str  # downloaded | skipped | one of REASONS
    bytes: int = 0
    detail: str = ""


class Mismatch(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def file_md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _etag_md5(etag: str | None) -> str | None:
    """A single-part object's ETag is its MD5 in hex; a multipart one (`...-N`) is not."""
    return etag.lower() if etag and len(etag) == 32 and "-" not in etag else None


def _expected(
    row: dict, size: int | None, etag: str | None, cfg: DownloadConfig
) -> tuple[int | None, str | None]:
    if cfg.verify == "index":
        return row["size"], row["md5"]
    return size, _etag_md5(etag)


def _check(n: int, md5: str, want_size: int | None, want_md5: str | None) -> None:
    if want_size is not None and n != want_size:
        raise Mismatch("size_mismatch", f"{n} bytes, expected {want_size}")
    if want_md5 is not None and md5 != want_md5:
        raise Mismatch("md5_mismatch", f"md5 {md5}, expected {want_md5}")


def _source(row: dict, cfg: DownloadConfig) -> str:
    return join_uri(cfg.images_from, cfg.split, f"{row['image_id']}.jpg")


def _already_there(row: dict, path: str, cfg: DownloadConfig) -> bool:
    """A file in place whose size and MD5 are what the download would have to give."""
    try:
        have = os.path.getsize(path)
    except FileNotFoundError:
        return False
    if cfg.verify == "index":
        want_size, want_md5 = row["size"], row["md5"]
    elif cfg.images_from.startswith("s3://"):
        want = _object_checksum(_source(row, cfg), cfg.anonymous)
        if want is None:  # gone from the source, or unreachable: the download decides what to report
            return False
        want_size, want_md5 = want
    else:
        want_size, want_md5 = _local_size(_source(row, cfg)), None
    if want_size is None or have != want_size:
        return False
    return want_md5 is None or file_md5(path) == want_md5


def _object_checksum(uri: str, anonymous: bool) -> tuple[int, str | None] | None:
    """(size, MD5 or None) of an S3 object from a one-byte ranged GET: its Content-Range has the size,
    its ETag the MD5. (Not HEAD: moto's policy check refuses an anonymous HEAD that S3 allows.)"""
    bucket, key = split_s3(uri)
    try:
        r = s3_client(anonymous).get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
    except Exception:
        return None
    r["Body"].close()
    total = str(r.get("ContentRange", "")).rpartition("/")[2]
    return (int(total), _etag_md5(str(r.get("ETag", "")).strip('"'))) if total.isdigit() else None


def _local_size(uri: str) -> int | None:
    try:
        return os.path.getsize(uri)
    except OSError:
        return None


def _download(row: dict, path: str, cfg: DownloadConfig) -> int:
    """One attempt: stream, hash, verify, rename into place. Raises Missing or Mismatch."""
    with open_stream(_source(row, cfg), cfg.anonymous) as (src, size, etag), temp_beside(path) as tmp:
        h, n = hashlib.md5(usedforsecurity=False), 0
        with open(tmp, "wb") as out:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
        if size is not None and n != size and cfg.verify == "index":  # a transfer cut short
            raise Mismatch("size_mismatch", f"transfer ended after {n} of {size} bytes")
        _check(n, h.hexdigest(), *_expected(row, size, etag, cfg))
        # No fsync: the rename is atomic for a killed process, and a rerun re-verifies what it finds.
        os.replace(tmp, path)
    return n


def fetch_one(row: dict, cfg: DownloadConfig) -> Outcome:
    path = os.path.join(cfg.dest, cfg.split, f"{row['image_id']}.jpg")
    if _already_there(row, path, cfg):
        return Outcome(row["image_id"], "skipped")
    delay("fetch-image")  # tests only: slow downloads, so a run can be killed in the middle
    last = Outcome(row["image_id"], "error")
    for attempt in range(cfg.retries + 1):
        try:
            return Outcome(row["image_id"], "downloaded", _download(row, path, cfg))
        except Missing as e:  # permanent: retrying a 404 cannot help
            return Outcome(row["image_id"], "missing", detail=str(e))
        except Forbidden as e:  # permanent for this run too
            return Outcome(row["image_id"], "error", detail=str(e))
        except Mismatch as e:
            last = Outcome(row["image_id"], e.reason, detail=str(e))
        except Exception as e:  # a reset connection, a throttled request: retried
            last = Outcome(row["image_id"], "error", detail=f"{type(e).__name__}: {e}"[:300])
        if attempt < cfg.retries:
            time.sleep(cfg.backoff_s * 2**attempt)
    last.detail = f"{last.detail} (after {cfg.retries + 1} attempts)"
    return last


def fetch_chunk(chunk_path: str, cfg: DownloadConfig, on_done=None) -> dict:
    """Every image of one chunk file, `cfg.threads` at a time; its counts and its failures.
    `on_done(outcome)` is called after each image (progress)."""
    rows = pq.read_table(chunk_path).to_pylist()
    os.makedirs(os.path.join(cfg.dest, cfg.split), exist_ok=True)
    t0 = time.perf_counter()
    counts = dict.fromkeys(("downloaded", "skipped", *REASONS), 0)
    failures, nbytes = [], 0
    with ThreadPoolExecutor(max(1, cfg.threads)) as pool:
        for out in pool.map(lambda r: fetch_one(r, cfg), rows):  # at most one chunk in flight
            counts[out.status] += 1
            nbytes += out.bytes
            if out.status in REASONS:
                failures.append({"image_id": out.image_id, "reason": out.status, "detail": out.detail})
            if on_done is not None:
                on_done(out)
    return {
        "chunk": os.path.basename(chunk_path),
        "images": len(rows),
        "bytes": nbytes,
        "seconds": round(time.perf_counter() - t0, 4),
        "counts": counts,
        "failures": failures,
    }
