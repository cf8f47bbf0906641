"""Building the latent cache on a Ray cluster (training/pbe/cache.py): only the parts without an
entry, in parallel over a Ray Data actor pool, one model per actor (one per GPU; N on CPU).

Each actor encodes whole parts and writes each entry atomically as it finishes, so the driver
streams progress part by part and a killed build resumes with the entries already written.
"""

from __future__ import annotations

from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.runs.plan import pin
from doodleflow.training.runtime.logs import log as _log
from doodleflow.training.runtime.ray_utils import init_ray


class PartEncoder:
    """A Ray Data actor: loads the frozen encoders once, then encodes the parts it is given."""

    def __init__(self, cfg: dict, threads: int = 1) -> None:
        import torch
        from doodleflow.training.pbe.model import load_model

        self.cfg = TrainConfig.from_dict(cfg)
        self.cuda = self.cfg.run.use_gpu and torch.cuda.is_available()
        if not self.cuda:
            torch.set_num_threads(max(1, threads))
        self.model = load_model(self.cfg.model.source).to("cuda" if self.cuda else "cpu")

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        import torch
        from doodleflow.training.pbe.cache import Entry, encode_entry

        rows = []
        for src, dst, sha in zip(batch["src"], batch["dst"], batch["sha256"], strict=True):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
                rows.append(encode_entry(self.model, self.cfg, Entry(str(src), str(dst), str(sha))))
        return {"sha256": np.asarray(batch["sha256"]), "rows": np.asarray(rows)}


def default_workers(use_gpu: bool) -> int:
    """One actor per GPU of the cluster; on CPU, one per two cores (torch's own threads use the rest)."""
    import ray

    res = ray.cluster_resources()
    if use_gpu:
        return max(1, int(res.get("GPU", 1)))
    return max(1, int(res.get("CPU", 2)) // 2)


def build_cache(
    cfg: TrainConfig, ray_address: str | None = None, log=_log, workers: int | None = None
) -> dict:
    """Encode the parts of cfg's version that have no cache entry (a no-op when the version's cache
    is complete); returns the manifest."""
    from doodleflow.training.pbe.cache import find_cache, missing_entries, write_manifest
    from doodleflow.training.runs import latent_cache

    resolved = pin(cfg)

    def encode(todo: list) -> None:
        init_ray(ray_address)
        _encode(resolved, todo, workers or default_workers(resolved.run.use_gpu), log)

    manifest, encoded = latent_cache.build(
        lambda: find_cache(resolved),
        lambda: missing_entries(resolved),
        encode,
        lambda: write_manifest(resolved),
    )
    if encoded is None:
        log(f"latent cache: already built ({manifest['rows']} samples)")
        return manifest
    log(
        f"latent cache: {resolved.run.dataset} v{resolved.run.version}: {encoded} of "
        f"{len(manifest['parts'])} part(s) encoded, the rest reused ({manifest['rows']} samples)"
    )
    return manifest


def _encode(cfg: TrainConfig, todo: list, workers: int, log) -> None:
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    n = min(workers, len(todo))
    cpus = 1 if cfg.run.use_gpu else max(1, int(ray.cluster_resources().get("CPU", 1)) // n)
    items = [{"src": e.src, "dst": e.dst, "sha256": e.sha256} for e in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        PartEncoder,
        fn_constructor_kwargs={"cfg": cfg.to_dict(), "threads": cpus},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=n),
        num_gpus=1 if cfg.run.use_gpu else 0,
        num_cpus=cpus,
    )
    log(f"latent cache: encoding {len(todo)} part(s) with {n} worker(s)")
    for row in ds.iter_rows():  # as each part finishes
        log(f"latent cache: part {row['sha256'][:12]} ({row['rows']} samples) encoded")
