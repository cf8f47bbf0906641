"""What a Paint-by-Example training job needs before the Ray workers start (no Ray here): the pinned
config, the run directory and the shared checks (training/runs/plan.py), the latent cache if any,
and the epochs this launch streams (training/pbe/stream.py)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from doodleflow.training.pbe.cache import find_cache
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.model import frozen_base_dirs, resolve_source_dir
from doodleflow.training.pbe.stream import StreamPlan, plan_stream
from doodleflow.training.registry.bases import record_run_bases
from doodleflow.training.runs.plan import JobPlan, dataset_manifest, open_run, pin
from doodleflow.training.runtime.logs import log as _log

FAMILY = "pbe"
DATASET_KIND = "pbe-triples"


@dataclass
class PbEPlan(JobPlan):
    cache: dict | None  # the latent cache manifest used, if any
    stream: StreamPlan  # the epochs this launch streams (training/pbe/stream.py)


def clip_image_size(cfg: TrainConfig) -> int:
    """The CLIP tower's input size, read from its config file (the driver never loads weights)."""
    src = cfg.model.source
    path = (
        os.path.join(src.clip, "config.json")
        if src.kind == "sd1"
        else os.path.join(resolve_source_dir(src), "image_encoder", "config.json")
    )
    with open(path) as f:
        c = json.load(f)
    return int(c.get("vision_config", c).get("image_size", 224))


def plan_job(cfg: TrainConfig, log=_log) -> PbEPlan:
    """Pin the config, run the shared checks (training/runs/plan.py), find the latent cache."""
    cfg = pin(cfg.check())
    ds, manifest = dataset_manifest(cfg, DATASET_KIND)
    run = open_run(cfg, FAMILY, int(manifest["rows_total"]), log)
    # a checkpoint loaded by path is verified against these
    record_run_bases(run, frozen_base_dirs(cfg.to_dict()))
    cache = None
    if cfg.data.latent_cache != "off":
        cache = find_cache(cfg)
        log(f"latent cache: {cache['rows']} samples" if cache else "latent cache: none for this version")
    stream, counts = plan_stream(cfg, ds, manifest, cache, clip_image_size(cfg), log)
    parts = [ds.uri(p) for p in ds.part_paths(cfg.run.version)]
    return PbEPlan(cfg=cfg, run=run, parts=parts, counts=counts, cache=cache, stream=stream)
