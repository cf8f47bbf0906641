"""Building the latent cache as a Ray task, on a GPU when the run uses GPUs (training/pbe/cache.py)."""

from __future__ import annotations

from doodleflow.training.common.ray_utils import init_ray
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.ray_job import _log, resolve


def build_cache(cfg: TrainConfig, ray_address: str | None = None, log=_log) -> dict:
    """Encode cfg's dataset version once (a no-op when its cache exists); returns the manifest."""
    import ray
    from doodleflow.training.pbe.cache import find_cache

    resolved = resolve(cfg)
    found = find_cache(resolved)
    if found:
        log(f"latent cache: already built ({found['rows']} samples)")
        return found
    init_ray(ray_address)
    task = ray.remote(_build).options(num_gpus=1 if cfg.run.use_gpu else 0, num_cpus=1)
    manifest = ray.get(task.remote(resolved.to_dict()))
    log(f"latent cache: encoded {manifest['rows']} samples of {resolved.run.dataset} v{resolved.run.version}")
    return manifest


def _build(cfg_dict: dict) -> dict:
    import torch
    from doodleflow.training.pbe.cache import build_latent_cache
    from doodleflow.training.pbe.model import load_model

    cfg = TrainConfig.from_dict(cfg_dict)
    device = "cuda" if cfg.run.use_gpu and torch.cuda.is_available() else "cpu"
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        return build_latent_cache(load_model(cfg.model.source).to(device), cfg, log=_log)
