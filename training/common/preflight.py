"""What a command checks before any server, pool or cluster starts, and without writing anything: the
config's cross-field rules, the dataset version it names (and that it holds this family's kind of
data), and the local model directories. Light imports only (no torch, Ray or Prefect), so a bad
argument is refused within a second or two."""

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
    if not cfg.run.dataset:
        return None
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
