"""What a command checks before any server, pool or cluster starts, and without writing anything: the
config's cross-field rules, the dataset version it names (and that it holds this family's kind of
data), the local model directories, and for a GPU run its memory plan against the GPUs' memory. Light
imports only (no torch, Ray or Prefect) until a GPU run is planned, so a bad argument is refused
within a second or two."""

from __future__ import annotations

import os

from doodleflow.infra.errors import ConfigError

# Each dataset kind and the command that makes it (data/refresh.py, data/pairs.py).
MADE_BY = {"pbe-triples": "doodleflow refresh", "photodoodle-pairs": "doodleflow ingest pairs"}


def preflight(cfg, kind: str | None = None) -> int | None:
    """Refuse a bad config; returns the dataset version it pins (None without a dataset). With `kind`,
    the version must hold that kind of data."""
    cfg.check()
    src = cfg.model.source
    for flag, path in (("--pretrained", src.pretrained), ("--clip", getattr(src, "clip", None))):
        if path and "://" not in path and not os.path.isdir(path):
            raise ConfigError(f"{flag} {path!r} is not a directory: pass a local diffusers model directory")
    version = _dataset_version(cfg, kind) if cfg.run.dataset else None
    check_gpu_memory(cfg)
    return version


def _dataset_version(cfg, kind: str | None) -> int:
    from doodleflow.data.store import DatasetStore

    ds = DatasetStore(cfg.run.store, cfg.run.dataset)
    version = ds.resolve(cfg.run.version or None)
    if kind is not None:
        got = ds.manifest(version).get("kind", kind)
        if got != kind:
            raise ConfigError(
                f"--dataset {ds.name}: v{version} holds {got} data, not the {kind} this command trains on "
                f"(`{MADE_BY.get(kind, 'doodleflow')}` makes those)"
            )
    return version


def gpu_limit(cfg) -> float | None:
    """GiB per worker GPU: `--gpu-memory`, else this machine's GPUs when the cluster is local (a remote
    cluster's are read from its resources by the job, before its workers start)."""
    if cfg.launch.gpu_memory is not None:
        return cfg.launch.gpu_memory
    if cfg.run.use_gpu and not (cfg.launch.ray_address or os.environ.get("RAY_ADDRESS")):
        from doodleflow.training.memplan.limits import local_gpus

        return local_gpus()
    return None


def check_gpu_memory(cfg, limit: float | None = None) -> None:
    """A GPU run (or one given --gpu-memory) is planned, the plan logged, and refused (ConfigError,
    exit 2) when it exceeds its GPUs' memory. CPU runs are not planned (the plan is the GPU's)."""
    if not (cfg.run.use_gpu or cfg.launch.gpu_memory is not None):
        return
    from doodleflow.training.memplan.auto import cached_plan, refuse_if_over
    from doodleflow.training.runtime.logs import log

    limit = limit if limit is not None else gpu_limit(cfg)
    if limit is None:
        log(f"{cached_plan(cfg).line()}; GPU memory not known yet (checked once Ray reports the cluster)")
        return
    refuse_if_over(cfg, limit, log)
