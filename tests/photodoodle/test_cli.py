"""The CLI in process: `ingest pairs` (a real Prefect flow run) and `generate doodle`, with --json
ending stdout with one JSON object; bad input exits 2 with the reason, before any work."""

from __future__ import annotations

import json
import os

import pytest
from doodleflow.data.pairs_synthetic import write_photodoodle_style
from doodleflow.flows.cli import main
from PIL import Image

from tests.photodoodle.helpers import PHOTO, save_artist_lora

pytestmark = pytest.mark.usefixtures("prefect_api")


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ingest_pairs_then_rerun_is_a_no_op(tmp_path, capsys):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    write_photodoodle_style(src, "magic", 3, photo_path=PHOTO)
    args = ["ingest", "pairs", "--source", src, "--dataset", "magic", "--store", store, "--json"]
    assert main(args) == 0
    first = _last_json(capsys)
    assert (
        first["created"] and first["pairs_total"] == 3 and first["triggers"] == {"magic": "sksmagiceffects"}
    )
    assert main(args) == 0
    again = _last_json(capsys)
    assert (again["version"], again["created"]) == (1, False)


def test_bad_input_exits_2_with_the_reason(tmp_path, capsys):
    src = str(tmp_path / "src")
    d = write_photodoodle_style(src, "magic", 1)
    with open(os.path.join(d, "meta.jsonl"), "a") as f:
        f.write("{not json\n")
    assert main(["ingest", "pairs", "--source", src, "--dataset", "m", "--store", str(tmp_path / "s")]) == 2
    assert "magic/meta.jsonl:2: malformed JSON" in capsys.readouterr().err
    assert main(["train", "artists", "--artists", "ok,../../etc", "--store", str(tmp_path / "s")]) == 2
    assert "invalid artist name '../../etc'" in capsys.readouterr().err


def test_generate_doodle(tiny_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DOODLEFLOW_HOME", str(tmp_path / "home"))
    store = str(tmp_path / "store")
    save_artist_lora(tiny_dir, store, "lulu")
    out = str(tmp_path / "doodle.png")
    args = ["generate", "doodle", "--artist", "lulu", "--image", PHOTO, "--prompt", "add a halo and wings for the cat",
            "--out", out, "--steps", "2", "--seed", "7", "--store", store, "--json"]  # fmt: skip
    assert main(args) == 0
    r = _last_json(capsys)
    assert r["out"] == out and r["steps"] == 2 and r["seed"] == 7 and Image.open(out).size == (64, 96)
