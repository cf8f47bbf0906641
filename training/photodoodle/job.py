"""What a PhotoDoodle training job needs before and around the Ray workers (no Ray here).

The driver resolves the dataset version, the artist's rows, the base transformer (EditLoRA trains on
the newest merged OmniEditor base of the same base weights; without one it fails unless `--base flux`
asks for the plain base), whether the pairs are cached, and the run directory (the checks shared with
every family: training/runs/plan.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from doodleflow.data.split import split_of
from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import ConfigError, InputError, NotFoundError
from doodleflow.training.photodoodle.artifacts import (
    artist_lora_rel,
    base_choice,
    omnieditor_lora_rel,
    save_lora,
)
from doodleflow.training.photodoodle.cache import cache_key, cache_path
from doodleflow.training.photodoodle.config import DataConfig, TrainConfig
from doodleflow.training.photodoodle.data import pair_counts
from doodleflow.training.photodoodle.merge import base_identity
from doodleflow.training.photodoodle.model import resolve_source_dir
from doodleflow.training.runs.plan import JobPlan, dataset_manifest, open_run, pin
from doodleflow.training.runtime.logs import log as train_log

PAIRS_KIND = "photodoodle-pairs"


@dataclass
class DoodlePlan(JobPlan):
    artist_filter: str | None  # keep only this artist's rows (a dataset holding several)
    trigger: str | None
    pairs: int
    cache_dir: str | None  # store path of the encoded-pairs cache when caching
    base: str  # what the LoRA trains on: "merged-omnieditor", "flux" or "given"
    heldout: tuple[float, int]  # the version's split (fraction, seed): those pairs are never trained on


def artist_rows(manifest: dict, artist: str | None, dataset: str) -> tuple[str | None, int]:
    """(row filter, number of pairs) for `artist` in a pair dataset version."""
    counts = manifest.get("artists", {})
    if artist is None:
        return None, int(manifest["rows_total"])
    if artist in counts:
        return (artist if len(counts) > 1 else None), int(counts[artist])
    if (
        len(counts) == 1 and dataset == artist
    ):  # the dataset named after the artist, style folder named otherwise
        return None, int(manifest["rows_total"])
    raise NotFoundError(
        f"dataset {dataset!r} holds no pairs of artist {artist!r} (artists: {sorted(counts)})"
    )


def check_parts(ds: DatasetStore, version: int) -> None:
    """Every Parquet part of the version has a readable footer: a broken dataset fails here, in the
    driver, before any worker starts."""
    import pyarrow.parquet as pq

    for p in ds.part_paths(version):
        try:
            with ds.fs.open(p, "rb") as f:
                pq.read_metadata(f)
        except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
            raise InputError(f"dataset {ds.name!r} v{version}: part {p} is not readable Parquet ({e})") from e


def resolve_base(cfg: TrainConfig, log: Callable[[str], None]) -> tuple[TrainConfig, str]:
    """(config with the transformer to train on, what that base is: "merged-omnieditor", "flux" or
    "given"). EditLoRA trains on the merged OmniEditor base, as the reference does; a run without one
    fails unless the plain FLUX base is asked for (`--base flux`)."""
    src = cfg.model.source
    if cfg.run.stage != "editlora" and not src.base_transformer:
        return cfg, "flux"
    transformer, base = base_choice(cfg.run.store, src)
    if base == "flux":
        log("EditLoRA base: the plain FLUX base (--base flux), not a merged OmniEditor")
    elif base == "merged-omnieditor":
        log(f"EditLoRA base: merged OmniEditor transformer {transformer}")
    return cfg.replace(model={"source": dataclasses.replace(src, base_transformer=transformer)}), base


def plan_job(cfg: TrainConfig, log: Callable[[str], None] = train_log) -> DoodlePlan:
    """Pin the config, resolve the artist's rows and the base, run the shared checks
    (training/runs/plan.py), and decide whether the pairs are cached."""
    cfg = pin(cfg.check())
    ds, m = dataset_manifest(cfg, PAIRS_KIND)
    row_filter, _ = artist_rows(m, cfg.run.artist, ds.name)
    check_parts(ds, cfg.run.version)
    split = split_of(m)
    counts = pair_counts(ds, cfg.run.version, row_filter, split, cfg.data.buckets())
    pairs = counts["train_samples"]
    log(f"training pairs: {pairs} ({counts['heldout_samples']} held out for evaluation; {split.describe()})")
    log(describe_buckets(cfg.data, counts["buckets"]))
    # Write the tiny preset here, once: inside DDP workers transformers' save_pretrained writes weights
    # on rank 0 only, so a preset built by another rank would lack its text encoders' weights.
    resolve_source_dir(cfg.model.source)
    cfg, base = resolve_base(cfg, log)
    run = open_run(cfg, cfg.family, pairs, log, extra={"base": base})
    d = cfg.data
    cached = d.cache == "on" or (d.cache == "auto" and pairs <= d.cache_max_pairs)
    key = cache_key(base_identity(cfg.model.source), d.buckets(), d.max_sequence_length, cfg.run.artist)
    cache_dir = cache_path(cfg.run.store, ds.name, cfg.run.version, key) if cached else None
    check_streamed_buckets(cfg, cached)
    trigger = m.get("inputs", {}).get("triggers", {}).get(cfg.run.artist) if cfg.run.artist else None
    parts = [ds.uri(p) for p in ds.part_paths(cfg.run.version)]
    return DoodlePlan(
        cfg=cfg, run=run, parts=parts, counts=counts, artist_filter=row_filter, trigger=trigger,
        pairs=pairs, cache_dir=cache_dir, base=base, heldout=(split.fraction, split.seed),
    )  # fmt: skip


def describe_buckets(d: DataConfig, hist: dict[str, int]) -> str:
    """One line: how the pairs are sized for training."""
    if d.aspect == "stretch":
        return f"pair sizes: every pair stretched to {d.height}x{d.width} (--aspect stretch, the reference)"
    spread = ", ".join(f"{k} x{n}" for k, n in hist.items()) or "none"
    return f"pair sizes: aspect buckets at {d.height * d.width:,} px (h x w: {spread})"


def check_streamed_buckets(cfg: TrainConfig, cached: bool) -> None:
    """A streamed worker sees its pairs one at a time, in an order no worker plans ahead: with several
    buckets, micro-batches of one bucket could not be formed in the same number on every worker, so
    streamed bucket runs take micro-batches of 1 (the reference's) and accumulate."""
    d = cfg.data
    if not cached and d.aspect == "bucket" and cfg.batch_plan().micro_batch > 1:
        raise ConfigError(
            f"--micro-batch {cfg.batch_plan().micro_batch} with streamed pairs needs --aspect stretch: "
            "aspect buckets stream one pair per micro-batch (use --micro-batch 1, or --cache on)"
        )


def lora_card(cfg: TrainConfig, trigger: str | None, info: dict, base: str | None = None) -> dict:
    """What travels with a LoRA: where it came from and how to load it (the base it trained on included)."""
    src, d = cfg.model.source, cfg.data
    return {
        **info,
        "stage": cfg.run.stage,
        "artist": cfg.run.artist,
        "trigger": trigger,
        "run_id": cfg.run_id(),
        "dataset": cfg.run.dataset,
        "version": cfg.run.version,
        "base": base_identity(src),
        "base_transformer": src.base_transformer,
        "trained_on": base,  # "merged-omnieditor", "flux" (asked for with --base flux) or "given"
        "position_mode": cfg.model.condition.position_mode,
        "offset": cfg.model.condition.offset,
        "height": d.height,
        "width": d.width,
        "aspect": d.aspect,
        "max_sequence_length": d.max_sequence_length,
    }


def save_run_lora(
    cfg: TrainConfig, trigger: str | None, transformer, info: dict, base: str | None = None
) -> dict:
    """EditLoRA -> loras/<artist>/<run>/; OmniEditor -> runs/omnieditor/<run>/lora/."""
    rel = (
        artist_lora_rel(cfg.run.artist, cfg.run_id())
        if cfg.run.stage == "editlora"
        else omnieditor_lora_rel(cfg.run_id())
    )
    return save_lora(cfg.run.store, rel, transformer, cfg.model.lora, lora_card(cfg, trigger, info, base))
