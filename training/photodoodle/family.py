"""PhotoDoodle's hooks (training/family.py:FamilyHooks): what the shared launcher
(training/runtime/launch.py) and the registry ask of this family, each delegating to the module that
does it. One job trains one LoRA (the OmniEditor, or one artist's EditLoRA): small artist sets are
encoded once into the store's cache and served from memory; larger sets (OmniEditor) stream through
Ray Data and are encoded per step. The worker's imports stay inside the hooks that need them."""

from __future__ import annotations

import dataclasses
import json

from doodleflow.data.fsutil import filesystem, join
from doodleflow.training.family import WorkerEnv, WorkerParts
from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.photodoodle.job import DoodlePlan, plan_job, save_run_lora


def config_class() -> type:
    return TrainConfig


def run_family(cfg: TrainConfig) -> str:
    return cfg.family  # the stage: runs/omnieditor/, runs/editlora/


def plan(cfg: TrainConfig, log) -> DoodlePlan:
    return plan_job(cfg, log)


def scaling(cfg: TrainConfig) -> tuple[int, dict | None]:
    """At least one worker; `--cpus-per-worker`, else a share of the cluster; one GPU each on GPUs."""
    from doodleflow.training.runtime.ray_utils import cpus_per_worker

    cpus = cfg.launch.cpus_per_worker
    res = {"CPU": cpus if cpus is not None else cpus_per_worker(cfg.run.workers, cfg.run.use_gpu)}
    if cfg.run.use_gpu:
        res["GPU"] = 1
    return max(cfg.run.workers, 1), res


def describe(plan: DoodlePlan) -> str:
    mode = f"cached ({plan.cache_dir})" if plan.cache_dir else "streamed"
    return f"{plan.pairs} pairs of {plan.cfg.run.dataset} v{plan.cfg.run.version}, {mode}"


def worker_config(plan: DoodlePlan, resources: dict | None) -> dict:
    """The plan's own part as the workers read it, and their torch threads: the CPUs each reserved."""
    info = {
        "cache_dir": plan.cache_dir,
        "artist_filter": plan.artist_filter,
        "trigger": plan.trigger,
        "base": plan.base,
        "heldout": plan.heldout,
    }
    return {"plan": info, "threads": max(1, round(resources["CPU"]))}


def dataset(plan: DoodlePlan):
    """None when cached (each worker reads the store's cache), else the pair stream."""
    from doodleflow.training.photodoodle.stream import pair_stream

    return None if plan.cache_dir else pair_stream(plan)


def worker(cfg: TrainConfig, env: WorkerEnv) -> WorkerParts:
    """FLUX with the LoRA added, the cached pairs (or this worker's shard of the stream), the trainer,
    and rank 0's save of the LoRA after the last step."""
    from doodleflow.training.core.epochs import consumed
    from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
    from doodleflow.training.photodoodle.data import pixel_pairs
    from doodleflow.training.photodoodle.model import load_training_model
    from doodleflow.training.photodoodle.previews import doodle_previews
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer
    from doodleflow.training.runtime.ray_utils import shard_epochs

    plan, device, rank, world = env.config["plan"], env.device, env.rank, env.world
    model = load_training_model(cfg, device)
    # The cache is loaded (or built, encoders on the device) before the transformer goes there: the
    # text encoders are back on the CPU by then, never beside the denoiser (training/core/memory.py).
    cache = cached_pairs(cfg, plan, model, device, rank) if plan["cache_dir"] else None
    trainer = PhotoDoodleTrainer(model, cfg, device, rank, env.wrap)

    def epochs():
        if cache is not None:
            return cached_epochs(cache, trainer, rank, world)
        micro = trainer.cfg.batch_plan(world).micro_batch
        convert = lambda b: pixel_pairs(b, trainer.device)  # noqa: E731
        return shard_epochs(env.shard(), trainer.cfg, rank, convert, micro, consumed(trainer, world))

    def save_final(t, info: dict) -> dict:
        return save_run_lora(cfg, plan["trigger"], t.model.transformer, info, plan["base"])

    # The samples' prompts are encoded once, in `previews` (on the CPU when the cache released the
    # encoders), before the epochs.
    previews = lambda run, tracker: doodle_previews(trainer, run, plan, tracker)  # noqa: E731
    return WorkerParts(trainer, epochs, previews, save_final)


def base_dirs(kind: str, uri: str) -> list[str]:
    """A LoRA's or merged base's card names the FLUX base it loads with (training/photodoodle/artifacts.py):
    its folder, and the merged OmniEditor transformer an EditLoRA trained on."""
    fs, path = filesystem(uri)
    for name in ("lora.json", "merged.json"):
        if fs.exists(join(path, name)):
            return _flux_bases(json.loads(fs.cat_file(join(path, name))))
    return []


def _flux_bases(card: dict) -> list[str]:
    if "base" not in card:
        return []
    from doodleflow.training.inference.photodoodle import source_of
    from doodleflow.training.photodoodle.config import PLAIN_BASE
    from doodleflow.training.photodoodle.model import resolve_source_dir

    src = source_of(card)
    out = [resolve_source_dir(dataclasses.replace(src, base_transformer=None))]
    if src.base_transformer and src.base_transformer != PLAIN_BASE:
        out.append(src.base_transformer)
    return out
