"""Which stored samples each PbE epoch trains on (training/pbe/epochs.py): pure functions, no Ray."""

from __future__ import annotations

import io
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from doodleflow.data.fsutil import filesystem
from doodleflow.data.split import Split
from doodleflow.infra.errors import ConfigError
from doodleflow.training.pbe.epochs import epochs_to_cover, part_order, read_epoch_part, select_rows

# image a: 3 boxes x 2 variants, b: 1 box x 2 variants, c: 1 box x 1 variant
IMAGES = ["a"] * 6 + ["b"] * 2 + ["c"]
SAMPLES = [f"{i}-box{k // 2}-v{k % 2}" for i, k in zip(IMAGES, [0, 1, 2, 3, 4, 5, 0, 1, 0], strict=True)]


def draws(epochs: int, seed: int = 0, heldout=None) -> dict[str, list[str]]:
    out = defaultdict(list)
    for e in range(epochs):
        rows = select_rows(IMAGES, SAMPLES, e, seed, "image", heldout)
        assert sorted(Counter(IMAGES[i] for i in rows).values()) == [1] * len(set(IMAGES[i] for i in rows))
        for i in rows:
            out[IMAGES[i]].append(SAMPLES[i])
    return out


def test_one_stored_draw_per_image_per_epoch_each_shown_once_before_any_repeats():
    d = draws(12)
    assert set(d) == {"a", "b", "c"} and all(len(v) == 12 for v in d.values())
    for image, k in (("a", 6), ("b", 2), ("c", 1)):
        for cycle in range(12 // k):  # every block of K epochs shows all K draws of the image
            assert sorted(d[image][cycle * k : (cycle + 1) * k]) == sorted(
                s for s in SAMPLES if s.startswith(image)
            )
    assert d["a"][:6] != d["a"][6:]  # a fresh order every K epochs


def test_the_draw_depends_on_seed_and_epoch_only():
    assert draws(6) == draws(6)
    assert draws(6, seed=1) != draws(6)
    # Row order (e.g. another part layout) does not change which samples an epoch picks.
    perm = np.random.default_rng(0).permutation(len(IMAGES))
    for e in range(4):
        a = {SAMPLES[i] for i in select_rows(IMAGES, SAMPLES, e, 0)}
        b = {
            SAMPLES[perm[i]] for i in select_rows([IMAGES[p] for p in perm], [SAMPLES[p] for p in perm], e, 0)
        }
        assert a == b


def test_box_mode_takes_every_sample_and_neither_mode_takes_a_held_out_image():
    held = np.array([i == "b" for i in IMAGES])
    assert select_rows(IMAGES, SAMPLES, 3, 0, "box").tolist() == list(range(len(IMAGES)))
    assert "b" not in {IMAGES[i] for i in select_rows(IMAGES, SAMPLES, 3, 0, "box", held)}
    assert set(draws(4, heldout=held)) == {"a", "c"}
    with pytest.raises(ConfigError, match="--sample-by"):
        select_rows(IMAGES, SAMPLES, 0, 0, "boxes")


def test_a_part_read_returns_that_epochs_rows_from_the_row_groups_holding_them(tmp_path):
    table = pa.table({"image_id": IMAGES, "sample_id": SAMPLES, "payload": [s.encode() for s in SAMPLES]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=2)
    path = str(tmp_path / "part.parquet")
    with open(path, "wb") as f:
        f.write(sink.getvalue())
    fs, p = filesystem(path)
    split = Split(0.0, 0)
    for e in range(3):
        got = read_epoch_part(fs, p, ["sample_id", "payload"], split, e, 0, "image").to_pydict()
        want = {SAMPLES[i] for i in select_rows(IMAGES, SAMPLES, e, 0)}
        assert set(got["sample_id"]) == want and got["payload"] == [s.encode() for s in got["sample_id"]]


def test_an_epochs_order_follows_the_content_never_a_parts_file_name(tmp_path):
    """A part's name follows its inputs' fingerprints (size, mtime), so the same photos curated twice
    give the same bytes under another name: the rows' order, and the parts' order, must not move
    (it did: two fresh `train pbe` processes trained on different batches)."""
    table = pa.table({"image_id": IMAGES, "sample_id": SAMPLES, "payload": [s.encode() for s in SAMPLES]})
    reads = []
    for name in ("part-0123.parquet", "part-fedc.parquet"):
        pq.write_table(table, str(tmp_path / name), row_group_size=2)
        fs, p = filesystem(str(tmp_path / name))
        reads.append(
            [read_epoch_part(fs, p, ["sample_id"], Split(0.0, 0), e, 0, "box").to_pydict() for e in range(3)]
        )
    assert reads[0] == reads[1]
    assert reads[0][0] != reads[0][1]  # a fresh order every epoch
    shas = ("a" * 64, "b" * 64, "c" * 64)
    firsts = {shas[int(part_order(shas, 0, e)[0])] for e in range(8)}
    assert len(firsts) > 1  # the parts' order varies by epoch, and follows the sha256 wherever it is listed
    for e in range(3):
        flipped = tuple(reversed(shas))
        assert [shas[i] for i in part_order(shas, 0, e)] == [flipped[i] for i in part_order(flipped, 0, e)]


def test_epochs_to_cover_the_remaining_steps():
    assert epochs_to_cover(10, 4, 20) == 3  # 40 rows of 20 per epoch, plus one spare
    assert epochs_to_cover(0, 4, 20) == 1
