"""Batches of a cached (small) pair set, without Ray: load or build the encoded pairs, then serve
each epoch as a seeded permutation split evenly across the workers."""

from __future__ import annotations

import torch
from doodleflow.data.split import Split
from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.config import TrainConfig


def cached_pairs(cfg: TrainConfig, plan: dict, model, device, rank: int):
    """The encoded pairs from the store's cache; built here (rank 0 stores it) when absent, through the
    shared build (training/runs/latent_cache.py): one entry, the version's pairs."""
    from doodleflow.data.store import DatasetStore
    from doodleflow.training.photodoodle.cache import build_cache, load_cache, save_cache
    from doodleflow.training.photodoodle.data import PAIR_COLUMNS, decode_pairs
    from doodleflow.training.runs import latent_cache

    built: list = []

    def encode(_entries: list) -> None:
        rows = DatasetStore(cfg.run.store, cfg.run.dataset).read_table(cfg.run.version, columns=PAIR_COLUMNS)
        arrays = decode_pairs(rows.to_pydict(), cfg.data.buckets(), plan["artist_filter"])
        on_cpu = cfg.savers(torch.device(device).type == "cuda").encoders == "cpu"
        model.encoders_to("cpu" if on_cpu else device)
        built.append(build_cache(model, arrays, cfg.data.max_sequence_length, "cpu" if on_cpu else device))
        if rank == 0:
            meta = {"dataset": cfg.run.dataset, "version": cfg.run.version}
            save_cache(cfg.run.store, plan["cache_dir"], built[0], meta)

    cache, _ = latent_cache.build(
        lambda: load_cache(cfg.run.store, plan["cache_dir"]),
        lambda: [plan["cache_dir"]],
        encode,
        lambda: built[0],
    )
    if cfg.savers(torch.device(device).type == "cuda").encoders != "device":
        model.release_encoders()  # every caption is encoded: T5 and CLIP stay off the GPU from here
    # The cache holds every pair of the version; the held-out ones are dropped here, on read (data/split.py).
    if plan.get("heldout"):
        held = Split(*plan["heldout"]).heldout_mask(cache.pair_ids)
        cache = cache.subset([i for i in range(len(cache)) if not held[i]])
    return cache


def epoch_order(cache, seed: int, epoch: int, micro_batch: int) -> list[list[int]]:
    """An epoch's micro-batches, each of one bucket: a seeded permutation of the pairs, walked in order,
    each pair joining its bucket's open micro-batch, which is emitted once full (a bucket's last,
    partial one waits for the next epoch's permutation). With one bucket (stretch) or micro-batches of
    1 this is the permutation cut into consecutive micro-batches, as before buckets. The count is the
    same every epoch: the sum over buckets of pairs // micro_batch."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(len(cache), generator=g).tolist()
    open_: dict[tuple[int, int], list[int]] = {}
    out = []
    for i in perm:
        group = open_.setdefault(cache.bucket(i), [])
        group.append(i)
        if len(group) == micro_batch:
            out.append(open_.pop(cache.bucket(i)))
    return out


def cached_epochs(cache, trainer, rank: int, world: int):
    """The epoch source (training/core/epochs.py) of the cached pairs: per epoch the micro-batches of
    `epoch_order`, dealt round-robin to the workers (the same number each); a resumed run skips the
    micro-batches drawn before the trainer's step without reading them, so it continues mid-epoch
    exactly. Batches are functions of the micro-batch's generator (latent samples and caption are drawn
    per micro-batch)."""
    from doodleflow.training.core.epochs import Epochs, consumed, indexed

    bs = trainer.cfg.batch_plan(world).micro_batch
    sizes: dict[tuple[int, int], int] = {}
    for i in range(len(cache)):
        sizes[cache.bucket(i)] = sizes.get(cache.bucket(i), 0) + 1
    per_epoch = sum(n // bs for n in sizes.values()) // world
    if per_epoch == 0:
        raise ConfigError(
            f"{len(cache)} cached pairs in {len(sizes)} bucket(s) make fewer micro-batches of one bucket than "
            f"workers ({world}): lower --micro-batch ({bs}), add pairs, or train with --aspect stretch"
        )

    def order(epoch: int) -> list[list[int]]:
        return epoch_order(cache, trainer.cfg.run.seed, epoch, bs)[: per_epoch * world][rank::world]

    def batch(idx: list[int]):
        return lambda gen: cache.batch(idx, trainer.model, gen, trainer.device)

    return Epochs(indexed(per_epoch, order), consumed(trainer, world), batch)
