"""Bad bytes and a full disk, on real files: a corrupt JPEG never becomes a sample, and a full disk
fails with one clear, permanent error and leaves no temporary file behind (now or after a kill)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

import numpy as np
import pytest
import simplejpeg
from doodleflow.data.config import CurationConfig
from doodleflow.data.fsutil import LEGACY_TMP_AGE
from doodleflow.data.refresh import commit_version, plan_refresh, refresh_in_process
from doodleflow.data.report import ShardProgress
from doodleflow.data.samples import real_photos
from doodleflow.data.shard import build_unit
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import add_photo, make_source
from doodleflow.data.units import new_plan_folder
from doodleflow.infra.errors import StorageFull, is_retryable
from PIL import Image


def _garble_middle(path: str, n: int = 4096, seed: int = 0) -> None:
    """Overwrite `n` bytes in the middle of a file with random bytes (a bad sector, a bad copy)."""
    data = bytearray(open(path, "rb").read())
    mid = len(data) // 2
    data[mid : mid + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    open(path, "wb").write(bytes(data))


def test_a_jpeg_with_a_garbled_middle_is_quarantined_with_the_decoders_message(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    make_source(src, 2, seed=0, size=(640, 480), boxes_per_image=(1, 1))
    # The Shorts photo: with these 4 KB garbled, Pillow still decodes it (libjpeg only warns)
    photo = next(p for p in real_photos() if p["image_id"] == "07988525d97edf50")
    add_photo(src, photo["path"], photo["image_id"], photo["label"], photo["boxes"])
    victim = os.path.join(src, "images", "train_0", f"{photo['image_id']}.jpg")
    _garble_middle(victim)
    with Image.open(victim) as im:  # what the Pillow fallback used to commit: garbled pixels
        im.load()
    with pytest.raises(ValueError) as strict:
        simplejpeg.decode_jpeg(open(victim, "rb").read(), strict=True)
    with open(os.path.join(src, "images", "train_0", "notajpeg0000001.jpg"), "wb") as f:
        f.write(b"this is not a jpeg" * 50)  # listed, no box: only the photo's boxes read pixels
    s = refresh_in_process(src, "corrupt", store)
    assert s["quarantined"] == {"unreadable_image": len(photo["boxes"])}
    ds = DatasetStore(store, "corrupt")
    assert photo["image_id"] not in ds.read_table(1, columns=["image_id"])["image_id"].to_pylist()
    q = ds.read_table(1, name="_quarantine.parquet").to_pylist()
    assert {r["image_id"] for r in q} == {photo["image_id"]}
    assert {r["detail"] for r in q} == {str(strict.value)}  # the decoder's own message


def test_an_unreadable_file_names_the_problem_not_a_stream_object(tmp_path):
    from doodleflow.data.imageio import UnreadableImage, decode_rgb, image_size

    with pytest.raises(UnreadableImage) as e:
        image_size(b"this is not a jpeg" * 50)
    assert "cannot identify image file" in str(e.value) and "BytesIO" not in str(e.value)
    truncated = open(real_photos()[0]["path"], "rb").read()
    with pytest.raises(UnreadableImage, match="Premature end of JPEG file"):
        decode_rgb(truncated[: len(truncated) // 2])


@contextlib.contextmanager
def _small_tmpfs(path: str, size: str):
    """A real filesystem of `size` (tmpfs): writes past it fail with ENOSPC as on a full disk."""
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def _temporaries(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if ".tmp-" in f]


def test_a_full_disk_fails_once_with_one_line_and_leaves_no_temporary_file(tmp_path):
    src = str(tmp_path / "src")
    make_source(src, 12, seed=0, size=(640, 480), boxes_per_image=(2, 2))  # ~24 samples, ~3 MB
    cfg = CurationConfig(samples_per_shard=6)
    with _small_tmpfs(str(tmp_path / "disk"), "1m") as disk:
        store = os.path.join(disk, "store")
        t0 = time.perf_counter()
        with pytest.raises(StorageFull) as e:
            refresh_in_process(src, "full", store, cfg)
        msg = str(e.value)
        assert msg.startswith("no space left on the device of ") and store in msg and "\n" not in msg
        assert not is_retryable(e.value) and time.perf_counter() - t0 < 30
        assert _temporaries(disk) == []  # the partial shard went with the failed write
        ds = DatasetStore(store, "full")
        assert ds.versions() == []
        # A killed writer's leftovers (no chance to clean up) are swept by the next run; a live
        # writer's file stays.
        shards = os.path.join(ds.root, "shards")
        dead = subprocess.Popen(["true"])
        dead.wait()
        host = _host_tag()
        left = [
            os.path.join(shards, f"a.parquet.tmp-{host}-{dead.pid}-0123456789ab"),
            os.path.join(shards, "b.parquet.tmp-" + "f" * 32),  # written before names carried a writer
        ]
        live = os.path.join(shards, f"c.parquet.tmp-{host}-{os.getpid()}-0123456789ab")
        for p in [*left, live]:
            open(p, "wb").write(b"x" * 1000)
        old = time.time() - LEGACY_TMP_AGE - 60
        os.utime(left[1], (old, old))
        subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
        s = refresh_in_process(src, "full", store, cfg)
        assert s["created"] and s["version"] == 1 and s["samples_total"] == 24
        assert _temporaries(disk) == [live]


def test_a_full_disk_at_commit_leaves_no_half_made_version(tmp_path):
    src = str(tmp_path / "src")
    make_source(src, 4, seed=1, size=(640, 480), boxes_per_image=(1, 1))
    cfg = CurationConfig(samples_per_shard=2)
    with _small_tmpfs(str(tmp_path / "disk"), "4m") as disk:
        store = os.path.join(disk, "store")
        plan, diff, units = plan_refresh(
            src, None, cfg, store, "late", new_plan_folder(DatasetStore(store, "late"))
        )
        stats = [build_unit(u, cfg, store, "late") for u in units]
        with open(os.path.join(disk, "filler"), "wb") as f, contextlib.suppress(OSError):  # fill the rest
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        ds = DatasetStore(store, "late")
        with pytest.raises(StorageFull):
            commit_version(ds, cfg, plan, diff, stats, "run", src)
        assert ds.versions() == [] and not os.path.exists(ds.version_path(1))
        assert _temporaries(disk) == []
        os.unlink(os.path.join(disk, "filler"))
        done = commit_version(ds, cfg, plan, diff, stats, "run", src)
        assert done["version"] == 1 and done["samples_total"] == 4


def _host_tag() -> str:
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def test_the_shard_line_keeps_build_and_wall_rates_apart():
    p = ShardProgress(n_units=2, total=34, noun="samples")
    p.t0 -= 20.0  # the run started 20 s ago (start-up, queueing)
    line = p.line({"key": "a" * 24, "rows": 17, "seconds": 0.08})
    assert "17 samples built in 0.08s (212.5 samples/s build)" in line
    assert "run: 17/34 samples in 20.0s wall (0.8 samples/s wall)" in line
    reused = p.line({"key": "b" * 24, "rows": 17, "seconds": 0.5, "reused": True})
    assert "17 samples already built" in reused and "samples/s build" not in reused
    assert "34/34 samples" in reused
