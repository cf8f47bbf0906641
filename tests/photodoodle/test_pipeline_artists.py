"""The nightly pipeline keys each artist on its own pairs: new pairs for one artist retrain that artist
only (the pipeline on a real Prefect server and a local Ray; the merged OmniEditor base the EditLoRAs
build on is made by the real merge, from a saved LoRA, without training one)."""

from __future__ import annotations

import os

import pytest
import torch
from doodleflow.data.pairs_synthetic import write_photodoodle_style
from doodleflow.flows.pipeline import PipelineConfig, pipeline
from doodleflow.training.photodoodle.artifacts import omnieditor_lora_rel, save_lora
from doodleflow.training.photodoodle.config import LoraSettings, ModelSource
from doodleflow.training.photodoodle.lora import add_lora
from doodleflow.training.photodoodle.merge import merge_omnieditor
from doodleflow.training.photodoodle.model import load_model

from tests.photodoodle.helpers import PHOTO

pytestmark = [pytest.mark.slow(seconds=45), pytest.mark.usefixtures("prefect_api", "ray_local")]


def _merged_base(store: str) -> None:
    source = ModelSource(preset="tiny")
    model = load_model(source)
    settings = LoraSettings(rank=4, alpha=4.0)
    with torch.no_grad():
        for p in add_lora(model.transformer, settings):
            p.mul_(0.0)
    card = save_lora(
        store, omnieditor_lora_rel("omni-test"), model.transformer, settings, {"stage": "omnieditor"}
    )
    merge_omnieditor(store, "omni-test", source, card["uri"])


def test_new_pairs_for_one_artist_retrain_that_artist_only(tmp_path):
    store, src = str(tmp_path / "store"), str(tmp_path / "artists")
    _merged_base(store)
    for i, a in enumerate(("alice", "bob")):
        write_photodoodle_style(src, a, 3, seed=i, photo_path=PHOTO)
    first = pipeline(PipelineConfig(artists_source=src, store=store, artist_steps=1, workers=1))
    assert first["artists"]["trained"] == ["alice", "bob"] and first["artists"]["skipped"] == []
    assert all(first["artists"]["artists"][a]["status"] == "completed" for a in ("alice", "bob"))

    write_photodoodle_style(src, "bob", 5, seed=1, photo_path=PHOTO)  # two new pairs for bob
    second = pipeline(PipelineConfig(artists_source=src, store=store, artist_steps=1, workers=1))
    assert second["pairs-bob"]["version"] == first["pairs-bob"]["version"] + 1
    assert second["pairs-alice"]["version"] == first["pairs-alice"]["version"]
    assert second["artists"]["trained"] == ["bob"] and second["artists"]["skipped"] == ["alice"]
    assert second["artists"]["artists"]["alice"]["skipped"] is True
    assert second["artists"]["artists"]["bob"]["skipped"] is False
    assert os.path.isdir(os.path.join(store, "pipeline", "artist"))
