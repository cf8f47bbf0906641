"""The rules the behaviour golden test compares by (tests/architecture/golden.py), on small documents:
what is normalised, what the tolerance check on another CPU lets through and what it still catches,
and what a structure-only comparison keeps."""

from __future__ import annotations

import json

import pytest

from tests.architecture.golden import Normaliser, differences, file_digest, structure

TENSOR = {"dtype": "torch.float32", "shape": [2, 3], "sha256": "a" * 24, "stats": [0.5, 0.25, 1.0]}


def test_normaliser_drops_time_and_replaces_home_and_ids():
    norm = Normaliser("/tmp/h")
    doc = {
        "time": 1.5,
        "created_at": "2026-12-08T01:03:02+00:00",
        "store": "/tmp/h/store",
        "run_id": "2a46cfd243fd4378a1470bb7a293a000",  # MLflow's
        "flow": "c3b88a5e-9c09-46a8-93db-2ba1f238ae9d",
        "files": {"model.safetensors": {"bytes": 10, "sha256": "f" * 64}},
        "manifest_hash": "6c48" * 16,  # 64 hex digits: a content digest, kept
        "loss": 1.25,
    }
    assert norm.value(doc) == {
        "store": "$HOME/store",
        "run_id": "<uuid>",
        "flow": "<uuid>",
        "files": {"model.safetensors": {"bytes": 10}},
        "manifest_hash": "6c48" * 16,
        "loss": 1.25,
    }


def test_exact_comparison_catches_the_last_bit():
    expected = {"loss": 1.1092771291732788, "t": TENSOR}
    assert differences(expected, json.loads(json.dumps(expected)), exact=True) == []
    moved = {"loss": 1.1092771291732790, "t": {**TENSOR, "sha256": "b" * 24}}
    diff = differences(expected, moved, exact=True)
    assert [d.split(":")[0] for d in diff] == ["/loss", "/t/sha256"]


def test_tolerance_check_skips_digests_but_catches_real_changes():
    expected = {"loss": 1.0, "t": TENSOR, "img": {"image": {"mean": [120.0], "pixels_sha256": "c" * 64}}}
    near = {"loss": 1.001, "t": {**TENSOR, "sha256": "d" * 24, "stats": [0.5001, 0.25, 1.0]},
            "img": {"image": {"mean": [121.5], "pixels_sha256": "e" * 64}}}  # fmt: skip
    assert differences(expected, near, exact=False) == []
    far = {**near, "loss": 1.01, "t": {**near["t"], "shape": [3, 2]}, "img": {"image": {"mean": [125.0]}}}
    diff = differences(expected, far, exact=False)
    assert [d.split(":")[0] for d in diff] == ["/img/image/mean[0]", "/loss", "/t/shape[0]", "/t/shape[1]"]


def test_structure_keeps_layout_config_and_base_digests_only():
    doc = {
        "run.json": {"json": {"config": {"optim": {"lr": 0.001}}, "run_id": "gold-v1-11e5cb0f81"}},
        "model.safetensors": {"tensors": {"w": TENSOR}},
        "metrics.jsonl": {"jsonl": [{"step": 1, "loss": 1.14, "grad_norm": 3.8, "lr": 0.001}]},
        "bases.json": {"json": [{"files": [{"path": "unet.safetensors", "sha256": "9" * 64}]}]},
        "tags": {"doodleflow.final_loss": "1.10", "doodleflow.run": "pbe/gold"},
    }
    assert structure(doc) == {
        "run.json": doc["run.json"],
        "model.safetensors": {"tensors": {"w": {"dtype": "torch.float32", "shape": [2, 3]}}},
        "metrics.jsonl": {"jsonl": [{"step": 1, "loss": "<value>", "grad_norm": "<value>", "lr": 0.001}]},
        "bases.json": doc["bases.json"],
        "tags": {"doodleflow.final_loss": "<value>", "doodleflow.run": "pbe/gold"},
    }


def test_images_are_compared_by_decoded_pixels(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (4, 2), (10, 20, 30))
    img.save(tmp_path / "a.png", compress_level=1)
    img.save(tmp_path / "b.png", compress_level=9)  # other bytes, same pixels
    a, b = (file_digest(str(tmp_path / n), Normaliser(str(tmp_path))) for n in ("a.png", "b.png"))
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    assert a == b and a["image"]["size"] == [4, 2] and a["image"]["mean"] == pytest.approx([10, 20, 30])
