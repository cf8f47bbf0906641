"""Published model folders (LoRAs, merged bases, evaluation outputs) get the store's usual modes."""

from __future__ import annotations

import os
import stat
import tempfile

from doodleflow.training.runs.store_dirs import upload_dir


def test_published_dir_is_readable_like_the_rest_of_the_store(tmp_path):
    umask = os.umask(0o022)
    try:
        src = tempfile.mkdtemp(dir=tmp_path)  # 0700, as a TemporaryDirectory is
        fd, weights = tempfile.mkstemp(dir=src, suffix=".safetensors")  # 0600
        os.write(fd, b"weights")
        os.close(fd)
        os.makedirs(os.path.join(src, "sub"), mode=0o700)
        uri = upload_dir(src, str(tmp_path / "store"), "loras/alice/run-1", "_card.json", {"a": 1})
    finally:
        os.umask(umask)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(uri) == 0o755 and mode(os.path.join(uri, "sub")) == 0o755
    assert mode(os.path.join(uri, os.path.basename(weights))) == 0o644
    assert mode(os.path.join(uri, "_card.json")) == 0o644
