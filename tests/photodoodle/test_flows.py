"""The PhotoDoodle flows on a real Prefect server and a local Ray:

- `omnieditor`: the LoRA job on Ray Train with DDP over two CPU workers, pairs streamed through Ray
  Data, then the merge that the EditLoRA stage builds on;
- `train_artists`: two artists trained in parallel in one flow run, each its own Ray Train job; one
  artist's dataset is broken (corrupt image bytes inside valid Parquet, so it fails in its Ray
  worker, mid-job): the other still finishes and the run reports both outcomes. Its EditLoRAs train
  on the merged OmniEditor base when one exists."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from doodleflow.data.store import DatasetStore
from doodleflow.flows.photodoodle import ArtistsFailed, omnieditor, train_artists
from doodleflow.training.photodoodle.config import TrainConfig

from tests.photodoodle.helpers import make_mixed_pair_dataset, make_pair_dataset

pytestmark = [pytest.mark.slow(seconds=65), pytest.mark.usefixtures("prefect_api", "ray_local")]


def _break_images(store: str, name: str) -> None:
    """Rewrite the version's part with garbage source images (the file itself stays valid Parquet)."""
    ds = DatasetStore(store, name)
    for path in ds.part_paths(ds.latest()):
        t = pq.read_table(path)
        bad = pa.array([b"not a jpeg"] * t.num_rows, pa.binary())
        t = t.set_column(t.schema.get_field_index("source_jpeg"), "source_jpeg", bad)
        os.unlink(path)  # a hard link to the shard: replace, do not write through
        pq.write_table(t, path)


def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r for r in runs if r.name.startswith("train-artist-")}


def test_omnieditor_then_artists_in_parallel(tmp_path):
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.artifacts import find_merged_base
    from doodleflow.training.photodoodle.config import ModelSource
    from doodleflow.training.photodoodle.merge import base_identity

    store = str(tmp_path / "store")
    # Square, landscape and portrait pairs, streamed at their own buckets (the workers' micro-batches
    # differ in shape within a step; DDP reduces the LoRA gradients all the same).
    sizes = [(240, 240), (300, 200), (200, 300)] * 2
    make_mixed_pair_dataset(str(tmp_path / "src-edits"), store, "edits", sizes)
    cfg = TrainConfig.for_stage("omnieditor", dataset="edits", store=store, steps=4, workers=2)
    # A global batch of 2 over the 2 workers: one pair each per step.
    r = omnieditor(cfg.replace(data={"cache": "off", "batch_size": 2}, launch={"cpus_per_worker": 0.5}))
    assert r["steps"] == 4 and r["world_size"] == 2 and r["replicas_agree"]
    assert (
        set(r["buckets"]) <= {"80x80", "64x96", "96x64"} and sum(r["buckets"].values()) == r["train_samples"]
    )
    assert len(r["buckets"]) >= 2
    assert r["lora"].endswith(f"runs/omnieditor/{r['run_id']}/lora/pytorch_lora_weights.safetensors")
    assert r["lora_card"]["rank"] == 128 and r["lora_card"]["stage"] == "omnieditor"
    assert r["merged_base"].endswith(f"models/photodoodle/merged-base/{r['run_id']}/transformer")
    assert FluxTransformer2DModel.from_pretrained(r["merged_base"]).config.num_layers == 1
    assert (
        find_merged_base(store, base_identity(ModelSource(preset="tiny")))["transformer"] == r["merged_base"]
    )
    _one_broken_artist_does_not_stop_the_other(tmp_path, store, r["merged_base"])


def _one_broken_artist_does_not_stop_the_other(tmp_path, store: str, merged_base: str):
    make_pair_dataset(str(tmp_path), store, "alice", 3, seed=1)
    make_pair_dataset(str(tmp_path), store, "bob", 3, seed=2)
    _break_images(store, "bob")
    cfg = TrainConfig.for_stage("editlora", store=store, steps=3)
    cfg = cfg.replace(launch={"cpus_per_worker": 0.5, "max_failures": 0})
    state = train_artists(["alice", "bob"], cfg, return_state=True)
    assert state.is_failed() and "1 of 2 artist(s) failed" in state.message
    err = state.result(raise_on_failure=False)
    assert isinstance(err, ArtistsFailed)
    out = err.summary["artists"]
    assert out["alice"]["status"] == "completed" and out["alice"]["steps"] == 3
    assert os.path.exists(out["alice"]["lora"]) and "/loras/alice/" in out["alice"]["lora"]
    card = json.loads(open(os.path.join(os.path.dirname(out["alice"]["lora"]), "lora.json")).read())
    assert (
        card["base_transformer"] == merged_base and card["trigger"] == "sksmagiceffects"
    )  # stage 2 on stage 1
    assert card["trained_on"] == "merged-omnieditor" and card["rank"] == card["alpha"] == 128
    assert out["bob"]["status"] == "failed" and "UnreadableImage" in out["bob"]["error"]
    assert err.summary["completed"] == ["alice"] and err.summary["failed"] == ["bob"]
    # both Ray jobs ran at the same time: the two task runs overlap
    runs = _task_runs(state.state_details.flow_run_id)
    a, b = runs["train-artist-alice"], runs["train-artist-bob"]
    assert a.start_time < b.end_time and b.start_time < a.end_time
    assert a.state.is_completed() and b.state.is_failed()
