"""What a command checks before any server, pool or cluster starts, and without writing anything: the
config's cross-field rules, the dataset version it names, and the local model directories. Light imports
only (no torch, Ray or Prefect), so a bad argument is refused within a second or two."""

from __future__ import annotations

import os

from doodleflow.infra.errors import ConfigError


def preflight(cfg) -> None:
    cfg.check()
    src = cfg.model.source
    for flag, path in (("--pretrained", src.pretrained), ("--clip", getattr(src, "clip", None))):
        if path and "://" not in path and not os.path.isdir(path):
            raise ConfigError(f"{flag} {path!r} is not a directory: pass a local diffusers model directory")
    if cfg.run.dataset:
        from doodleflow.data.store import DatasetStore

        DatasetStore(cfg.run.store, cfg.run.dataset).resolve(cfg.run.version or None)
