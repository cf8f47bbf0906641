"""What a PhotoDoodle training job needs before and around the Ray workers (no Ray here).

The driver resolves the dataset version, the artist's rows, the base transformer (EditLoRA trains on
the newest merged OmniEditor base of the same base weights unless told otherwise), whether the pairs
are cached, and the run directory, refusing to overwrite a run unless asked to resume.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import ConfigError, InputError, NotFoundError
from doodleflow.training.common.logs import log as train_log
from doodleflow.training.common.rundir import RunDir
from doodleflow.training.photodoodle.artifacts import (
    artist_lora_rel,
    find_merged_base,
    omnieditor_lora_rel,
    publish_lora,
)
from doodleflow.training.photodoodle.cache import cache_key, cache_path
from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.photodoodle.merge import base_identity
from doodleflow.training.photodoodle.model import default_tiny_root, resolve_source_dir

PAIRS_KIND = "photodoodle-pairs"
PLAIN_BASE = "plain"  # --base plain: EditLoRA on the unmerged base weights


@dataclass
class JobPlan:
    cfg: TrainConfig  # version, artist, model locations resolved
    run: RunDir
    parts: list[str]
    artist_filter: str | None  # keep only this artist's rows (a dataset holding several)
    trigger: str | None
    pairs: int
    cache_dir: str | None  # store path of the encoded-pairs cache when caching


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


def resolve_base(cfg: TrainConfig, log: Callable[[str], None]) -> TrainConfig:
    src = cfg.model.source
    if src.base_transformer == PLAIN_BASE:
        return cfg.replace(model={"source": dataclasses.replace(src, base_transformer=None)})
    if src.base_transformer or cfg.run.stage != "editlora":
        return cfg
    merged = find_merged_base(cfg.run.store, base_identity(src))
    if merged is None:
        log(
            "no merged OmniEditor base for these base weights in the store: EditLoRA trains on the plain base"
        )
        return cfg
    log(f"EditLoRA base: merged OmniEditor transformer {merged['transformer']}")
    return cfg.replace(model={"source": dataclasses.replace(src, base_transformer=merged["transformer"])})


def plan_job(cfg: TrainConfig, log: Callable[[str], None] = train_log) -> JobPlan:
    ds = DatasetStore(cfg.run.store, cfg.run.dataset)
    version = ds.resolve(cfg.run.version or None)
    m = ds.manifest(version)
    if m.get("kind") != PAIRS_KIND:
        raise ConfigError(
            f"dataset {ds.name!r} v{version} is {m.get('kind')!r}, not a PhotoDoodle pair dataset"
        )
    row_filter, pairs = artist_rows(m, cfg.run.artist, ds.name)
    check_parts(ds, version)
    src = cfg.model.source
    tiny_root = os.path.abspath(src.tiny_root or default_tiny_root()) if src.preset == "tiny" else None
    cfg = cfg.replace(
        run={"version": version}, model={"source": dataclasses.replace(src, tiny_root=tiny_root)}
    )
    # Write the tiny preset here, once: inside DDP workers transformers' save_pretrained writes weights
    # on rank 0 only, so a preset built by another rank would lack its text encoders' weights.
    resolve_source_dir(cfg.model.source)
    cfg = resolve_base(cfg, log)
    need = cfg.data.batch_size * max(cfg.run.workers, 1)
    if pairs < need:
        raise ConfigError(
            f"dataset {ds.name!r} v{version} has {pairs} pair(s) for this run, fewer than workers x batch size = {need}"
        )
    run = RunDir(cfg.run.store, cfg.family, cfg.run_id())
    latest = run.latest()
    if latest is not None and not cfg.run.resume:
        raise ConfigError(f"run {run.run_id} already has checkpoints (latest step {latest}) in {run.uri()}: "
                         "pass --resume to continue it, or --run-name for a new run")  # fmt: skip
    cached = cfg.data.cache == "on" or (cfg.data.cache == "auto" and pairs <= cfg.data.cache_max_pairs)
    key = cache_key(base_identity(cfg.model.source), cfg.data.height, cfg.data.width, cfg.data.max_sequence_length,
                    cfg.run.artist)  # fmt: skip
    if run.read_json("run.json") is None:
        run.write_json("run.json", {"run_id": run.run_id, "config": cfg.to_dict(),
                                    "dataset": {"name": ds.name, "version": version, "store": ds.store_uri}})  # fmt: skip
    trigger = m.get("inputs", {}).get("triggers", {}).get(cfg.run.artist) if cfg.run.artist else None
    return JobPlan(cfg, run, [ds.uri(p) for p in ds.part_paths(version)], row_filter, trigger, pairs,
                   cache_path(cfg.run.store, ds.name, version, key) if cached else None)  # fmt: skip


def lora_card(cfg: TrainConfig, trigger: str | None, info: dict) -> dict:
    src = cfg.model.source
    return {**info, "stage": cfg.run.stage, "artist": cfg.run.artist, "trigger": trigger, "run_id": cfg.run_id(),
            "dataset": cfg.run.dataset, "version": cfg.run.version, "base": base_identity(src),
            "base_transformer": src.base_transformer, "position_mode": cfg.model.condition.position_mode,
            "offset": cfg.model.condition.offset, "height": cfg.data.height, "width": cfg.data.width,
            "max_sequence_length": cfg.data.max_sequence_length}  # fmt: skip


def publish_run_lora(cfg: TrainConfig, trigger: str | None, transformer, info: dict) -> dict:
    """EditLoRA -> loras/<artist>/<run>/; OmniEditor -> runs/omnieditor/<run>/lora/."""
    rel = (
        artist_lora_rel(cfg.run.artist, cfg.run_id())
        if cfg.run.stage == "editlora"
        else omnieditor_lora_rel(cfg.run_id())
    )
    return publish_lora(cfg.run.store, rel, transformer, cfg.model.lora, lora_card(cfg, trigger, info))
