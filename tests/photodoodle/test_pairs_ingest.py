"""Pair ingest: both layouts, per-pair quarantine with reasons, fail-fast structure errors, atomic
idempotent versions."""

from __future__ import annotations

import json
import os

import pyarrow.dataset as pads
import pytest
from doodleflow.data.errors import InputError
from doodleflow.data.imageio import decode_rgb
from doodleflow.data.pairs import ingest_pairs_in_process
from doodleflow.data.pairs_synthetic import write_photodoodle_style, write_plain_folder
from doodleflow.data.store import DatasetStore
from PIL import Image

PHOTO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "photodoodle", "1.png")


def _append(meta: str, *objs) -> None:
    with open(meta, "a") as f:
        for o in objs:
            f.write((o if isinstance(o, str) else json.dumps(o)) + "\n")


def _bad_style(root: str) -> str:
    """A 'magic' style with 6 good pairs and one pair per kind of problem."""
    d = write_photodoodle_style(root, "magic", 6, seed=1, photo_path=PHOTO)
    with (
        open(os.path.join(d, "target", "0.jpg"), "rb") as f,
        open(os.path.join(d, "target", "trunc.jpg"), "wb") as out,
    ):  # a truncated JPEG
        out.write(f.read()[:300])
    Image.new("RGB", (40, 40)).save(os.path.join(d, "target", "square.png"))
    _append(
        os.path.join(d, "meta.jsonl"),
        {"source": "source/1.jpg", "target": "target/nope.jpg", "text": "x by sksmagiceffects"},
        {"source": "source/1.jpg", "target": "target/trunc.jpg", "text": "x by sksmagiceffects"},
        {"source": "source/2.jpg", "target": "target/2.jpg", "caption": "  "},
        {"source": "../../etc/passwd", "target": "target/2.jpg", "text": "x"},
        {"source": "source/0.jpg", "target": "target/0.jpg", "text": "again"},
        {"source": "source/3.jpg", "target": "target/square.png", "caption": ["other frame"]},
        "",
    )
    return d


def test_photodoodle_layout_quarantines_bad_pairs_and_stores_good_ones(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    _bad_style(src)
    write_photodoodle_style(src, "edges", 3, seed=2, trigger="sksedgeeffect")
    s = ingest_pairs_in_process(src, "styles", store, pairs_per_shard=4)
    assert s["created"] and s["version"] == 1 and s["pairs_total"] == 6 + 3
    assert s["quarantined"] == {
        "bad_path": 1,
        "duplicate": 1,
        "missing_caption": 1,
        "missing_target": 1,
        "size_mismatch": 1,
        "unreadable_image": 1,
    }
    assert s["artists"] == {"edges": 3, "magic": 6}
    assert s["triggers"] == {"edges": "sksedgeeffect", "magic": "sksmagiceffects"}
    t = pads.dataset(s["path"], format="parquet").to_table().to_pylist()
    by_path = {(r["artist"], r["source_path"]): r for r in t}
    r = by_path[("magic", "magic/source/2.jpg")]  # pair 2 is the one with a list of two captions
    assert len(r["captions"]) == 2 and all(c.endswith("by sksmagiceffects") for c in r["captions"])
    assert (r["width"], r["height"]) == (64, 96) and r["target_size"] == [64, 96]
    assert decode_rgb(r["source_jpeg"]).shape == (96, 64, 3)
    q = DatasetStore(store, "styles").read_table(1, name="_quarantine.parquet").to_pylist()
    by_reason = {row["reason"]: row for row in q}
    assert (
        by_reason["missing_target"]["file"] == "magic/meta.jsonl" and by_reason["missing_target"]["line"] == 7
    )
    assert by_reason["unreadable_image"]["file"] == "magic/target/trunc.jpg"
    assert "40x40" in by_reason["size_mismatch"]["detail"]


def test_plain_layout_with_captions_and_png(tmp_path):
    src, store = str(tmp_path / "plain"), str(tmp_path / "store")
    write_plain_folder(src, 4, seed=3)
    Image.open(os.path.join(src, "3_blend.jpg")).save(os.path.join(src, "3_blend.png"))
    os.remove(os.path.join(src, "3_blend.jpg"))  # a PNG "after" is stored as JPEG
    os.remove(os.path.join(src, "1.txt"))  # no caption
    Image.new("RGB", (64, 96)).save(os.path.join(src, "9.jpg"))  # no _blend partner
    s = ingest_pairs_in_process(src, "plain", store, artist="lulu", trigger="sksmonstercalledlulu")
    assert s["pairs_total"] == 3 and s["quarantined"] == {"missing_caption": 1, "missing_target": 1}
    rows = DatasetStore(store, "plain").read_table(1).to_pylist()
    assert {r["artist"] for r in rows} == {"lulu"} and {r["trigger"] for r in rows} == {
        "sksmonstercalledlulu"
    }
    png_pair = next(r for r in rows if r["target_path"] == "3_blend.png")
    assert png_pair["target_jpeg"][:3] == b"\xff\xd8\xff"


def test_structural_errors_fail_fast_before_any_version(tmp_path):
    store = str(tmp_path / "store")
    src = str(tmp_path / "src")
    d = write_photodoodle_style(src, "magic", 2)
    _append(os.path.join(d, "meta.jsonl"), '{"source": "source/0.jpg", "target": ')
    with pytest.raises(InputError, match=r"magic/meta.jsonl:3: malformed JSON"):
        ingest_pairs_in_process(src, "broken", store)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match=r"no meta\.jsonl"):
        ingest_pairs_in_process(str(empty), "broken", store)
    assert DatasetStore(store, "broken").versions() == []


def test_names_are_validated(tmp_path):
    src = str(tmp_path / "src")
    write_photodoodle_style(src, "bad name!", 1)
    with pytest.raises(InputError, match="style folder name"):
        ingest_pairs_in_process(src, "ok", str(tmp_path / "store"))
    with pytest.raises(ValueError, match="artist name"):
        ingest_pairs_in_process(src, "ok", str(tmp_path / "store"), artist="../evil")
    with pytest.raises(ValueError, match="dataset name"):
        ingest_pairs_in_process(src, "../up", str(tmp_path / "store"), artist="fine")


def test_reruns_are_idempotent_and_changes_make_a_new_version(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    d = write_photodoodle_style(src, "magic", 5, seed=4)
    first = ingest_pairs_in_process(src, "magic", store, pairs_per_shard=2)
    again = ingest_pairs_in_process(src, "magic", store, pairs_per_shard=2)
    assert (again["version"], again["created"]) == (1, False)
    os.utime(
        os.path.join(d, "source", "0.jpg"), (1e9, 1e9)
    )  # touched, same bytes: shard rebuilt, same content
    touched = ingest_pairs_in_process(src, "magic", store, pairs_per_shard=2)
    assert (touched["version"], touched["created"]) == (1, False)
    meta = os.path.join(d, "meta.jsonl")
    with open(meta) as f:
        lines = f.read().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), "text": "a new caption by sksmagiceffects"})
    with open(meta, "w") as f:
        f.write("\n".join(lines) + "\n")
    changed = ingest_pairs_in_process(src, "magic", store, pairs_per_shard=2)
    assert (changed["version"], changed["created"]) == (2, True)
    ds = DatasetStore(store, "magic")
    assert ds.versions() == [1, 2] and ds.manifest(2)["parent"] == 1
    caps = {c for r in ds.read_table(2).to_pylist() for c in r["captions"]}
    assert "a new caption by sksmagiceffects" in caps and first["pairs_total"] == changed["pairs_total"] == 5
