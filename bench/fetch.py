"""`fetch openimages` throughput against moto's S3 on loopback, next to raw GETs in the same run.

    python bench/fetch.py                      # 160 objects of 295 KB, 16 threads, 3 rounds
    python bench/fetch.py --images 40 --rounds 1

Cases, interleaved round by round (bench/common.py's rule: ratios within a round):
- `raw GET` (the baseline): the same objects, the same thread count, `get_object` read to the end and
  dropped: what any S3 client pays;
- `fetch`: data/oi_download.py's `fetch_chunk` into an empty folder: stream, MD5, write a temporary
  file, verify against the index's size and MD5, rename;
- `resume`: `fetch_chunk` again over the complete folder: every file verified in place (size + MD5,
  no request), nothing downloaded.

moto runs in its own process, so this process's CPU time (all its threads) is the client's alone:
CPU seconds per image give images/s per core, and the cores a full download needs at a given
bandwidth. The objects are 295 KB, the mean of the CVDF train copies (513 GB / 1,743,042 images,
cvdfoundation/open-images-dataset README.md); their bytes are random (a fetch never decodes).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import machine_line, table

TRAIN_IMAGES = 1_743_042
TRAIN_BYTES = 513e9  # the README's "(513GB)" for s3://open-images-dataset/train
MEAN_BYTES = int(TRAIN_BYTES / TRAIN_IMAGES)


def _moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import time; from moto.server import ThreadedMotoServer; "
        f"ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False).start(); time.sleep(1e9)"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto did not start")


def _setup(n: int, size: int, work: str) -> tuple[str, list[str]]:
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = boto3.client("s3", region_name="us-east-1")
    c.create_bucket(Bucket="bench-oi")
    rows = []
    for i in range(n):
        data = os.urandom(size)
        iid = f"{i:016x}"
        c.put_object(Bucket="bench-oi", Key=f"train/{iid}.jpg", Body=data)
        rows.append((iid, size, hashlib.md5(data, usedforsecurity=False).hexdigest()))
    chunk = os.path.join(work, "chunk-000000.parquet")
    pq.write_table(
        pa.table(
            {k: [r[j] for r in rows] for j, k in enumerate(("image_id", "size", "md5"))}
            | {"rotation": [0.0] * n}
        ),
        chunk,
    )
    return chunk, [r[0] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--size", type=int, default=MEAN_BYTES)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gbit", type=float, default=1.0, help="bandwidth for the cores-needed figure")
    a = ap.parse_args()
    moto, url = _moto()
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    work = tempfile.mkdtemp(prefix="doodleflow-bench-fetch-")
    try:
        _run(a, work)
    finally:
        moto.kill()
        shutil.rmtree(work, ignore_errors=True)


def _run(a, work: str) -> None:
    from doodleflow.data.oi_download import DownloadConfig, fetch_chunk
    from doodleflow.data.oi_remote import s3_client

    chunk, ids = _setup(a.images, a.size, work)
    dest = os.path.join(work, "images")
    cfg = DownloadConfig(
        "s3://bench-oi", dest, "train", "index", anonymous=False, threads=a.threads, retries=0
    )
    client = s3_client(False, pool=a.threads)

    def raw() -> int:
        def get(iid: str) -> int:
            body = client.get_object(Bucket="bench-oi", Key=f"train/{iid}.jpg")["Body"]
            n = 0
            while chunk_ := body.read(1 << 20):
                n += len(chunk_)
            return n

        with ThreadPoolExecutor(a.threads) as pool:
            assert sum(pool.map(get, ids)) == a.size * len(ids)
        return len(ids)

    def fetch() -> int:
        shutil.rmtree(dest, ignore_errors=True)
        s = fetch_chunk(chunk, cfg)
        assert s["counts"]["downloaded"] == len(ids), s["counts"]
        return len(ids)

    def resume() -> int:
        s = fetch_chunk(chunk, cfg)
        assert s["counts"]["skipped"] == len(ids), s["counts"]
        return len(ids)

    cases = {"raw GET": raw, "fetch": fetch, "resume": resume}
    for fn in cases.values():  # warm-up: connections, imports, page cache
        fn()
    wall = {n: [] for n in cases}
    cpu = {n: [] for n in cases}
    for r in range(a.rounds):
        names = list(cases)[r % 3 :] + list(cases)[: r % 3]
        for n in names:
            t0, c0 = time.perf_counter(), time.process_time()
            k = cases[n]()
            wall[n].append(k / (time.perf_counter() - t0))
            cpu[n].append((time.process_time() - c0) / k)
        print(
            f"  round {r + 1}/{a.rounds}: "
            + ", ".join(
                f"{n} {wall[n][-1]:.0f} img/s wall, {1 / cpu[n][-1]:.0f} img/s per core" for n in cases
            ),
            flush=True,
        )
    med = {n: statistics.median(cpu[n]) for n in cases}
    ratio = statistics.median(f / g for f, g in zip(cpu["fetch"], cpu["raw GET"], strict=True))
    print(machine_line())
    print(
        f"{a.images} objects of {a.size} bytes, {a.threads} threads, {a.rounds} rounds, moto server in its own process on 127.0.0.1"
    )
    rows = [
        [n, f"{statistics.median(wall[n]):.0f}", f"{1 / med[n]:.0f}", f"{1e3 * med[n]:.2f}"] for n in cases
    ]
    print(table(["case", "images/s (wall)", "images/s per core (client CPU)", "client CPU ms/image"], rows))
    need = a.gbit * 1e9 / 8 / MEAN_BYTES
    print(f"fetch / raw GET client CPU per image: {ratio:.2f}x")
    print(
        f"1.74M train at {a.gbit:g} Gbit/s: {need:.0f} images/s of {MEAN_BYTES / 1e3:.0f} KB -> "
        f"{need * med['fetch']:.2f} cores for fetch ({need * med['raw GET']:.2f} for raw GETs), "
        f"{TRAIN_IMAGES / need / 3600:.1f} h; a rerun over a complete download verifies "
        f"{1 / med['resume']:.0f} images/s per core ({TRAIN_IMAGES * med['resume'] / 3600:.2f} core-hours)"
    )


if __name__ == "__main__":
    main()
