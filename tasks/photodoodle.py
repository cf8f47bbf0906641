"""Prefect tasks of PhotoDoodle: thin wrappers over data/pairs* and training/photodoodle (no model code)."""

from __future__ import annotations

from doodleflow.data.pairs import commit_pairs_version, plan_ingest
from doodleflow.data.pairs_build import PairUnit, build_pairs_unit
from doodleflow.data.pairs_source import PairPlan
from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import Stopped, retry_condition
from doodleflow.tasks.progress import training_progress
from doodleflow.tasks.stopping import cancelled_state, watch_cancel
from doodleflow.training.photodoodle.config import TrainConfig
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE


def _pairs_unit_key(_ctx, params: dict) -> str:
    # The unit key already hashes the builder version and every pair's fingerprint.
    return f"build-pairs|{params['store_uri']}|{params['dataset']}|{params['unit'].key}"


@task(name="plan-pairs", cache_policy=NO_CACHE)
def plan_pairs_task(source: str, artist: str | None, trigger: str | None, pairs_per_shard: int,
                    store_uri: str, dataset: str) -> tuple[PairPlan, list[PairUnit]]:  # fmt: skip
    """Read and validate the source's structure (fails fast), list its pairs in work units."""
    return plan_ingest(source, artist, trigger, pairs_per_shard, store_uri, dataset)


@task(name="build-pairs-shard", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_condition,
      cache_key_fn=_pairs_unit_key, persist_result=True)  # fmt: skip
def build_pairs_shard(unit: PairUnit, store_uri: str, dataset: str) -> dict:
    return build_pairs_unit(unit, store_uri, dataset)


@task(name="commit-pairs", cache_policy=NO_CACHE)
def commit_pairs(store_uri: str, dataset: str, plan: PairPlan, stats: list[dict], run_id: str) -> dict:
    return commit_pairs_version(DatasetStore(store_uri, dataset), plan, stats, run_id)


def _launch(cfg: TrainConfig) -> dict:
    from doodleflow.training.family import family
    from doodleflow.training.runtime.launch import launch

    with (
        watch_cancel(),
        training_progress(f"train {cfg.run.stage}", cfg.run.steps, "train", cfg.run.stage, cfg.run.dataset),
    ):
        try:
            return launch(family("photodoodle"), cfg, log=get_run_logger().info)
        except Stopped as e:  # stopped on request, checkpointed: Cancelled, not Failed
            return cancelled_state(e)


@task(name="train-artist", cache_policy=NO_CACHE, task_run_name="train-artist-{artist}")
def train_artist_task(artist: str, cfg: TrainConfig) -> dict:
    """One artist's EditLoRA as its own Ray Train job (its own worker group and resources)."""
    return _launch(cfg)


@task(name="train-omnieditor", cache_policy=NO_CACHE)
def train_omnieditor_task(cfg: TrainConfig) -> dict:
    return _launch(cfg)


@task(name="merge-omnieditor", cache_policy=NO_CACHE)
def merge_omnieditor_task(store: str, run_id: str, cfg: TrainConfig, lora_uri: str) -> dict:
    """Fuse the OmniEditor LoRA into the base and store it as the EditLoRA base."""
    import torch
    from doodleflow.training.photodoodle.merge import merge_omnieditor

    dtype = torch.bfloat16 if cfg.model.source.preset == "flux-dev" else None  # FLUX-dev ships bf16
    return merge_omnieditor(store, run_id, cfg.model.source, lora_uri, dtype)


@task(name="cluster-slots", cache_policy=NO_CACHE)
def cluster_slots(per_job: dict[str, float], ray_address: str | None = None) -> int:
    """How many jobs needing `per_job` resources the Ray cluster can hold at once (at least 1)."""
    import ray
    from doodleflow.training.runtime.ray_utils import init_ray

    init_ray(ray_address)
    total = ray.cluster_resources()
    fits = [int(total.get(k, 0.0) // v) for k, v in per_job.items() if v > 0]
    return max(1, min(fits) if fits else 1)
