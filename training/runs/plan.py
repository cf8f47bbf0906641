"""Planning a training run, the same for every family: pin what "latest" means, check the dataset
version (its kind, enough rows for one step of every worker), and the run directory (a fresh start
or an explicit --resume, never past --steps), all in the driver before any worker starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import ConfigError, InputError
from doodleflow.training.core.batching import BatchPlan
from doodleflow.training.core.hf import tiny_root
from doodleflow.training.runs.rundir import RunDir


@dataclass
class JobPlan:
    """What the driver settles before any worker starts, the same for every family; a family's plan
    subclasses it with its own part (training/pbe/job.py:PbEPlan, training/photodoodle/job.py:DoodlePlan)."""

    cfg: Any  # the family's TrainConfig, pinned: dataset version and model locations resolved
    run: RunDir
    parts: list[str]  # the version's Parquet parts (URIs)
    counts: dict  # train / held-out samples (reported by `train --json`, joined to result.json)


def pin(cfg):
    """The config with the dataset version resolved (0 = latest) and the tiny preset's root made absolute."""
    version = DatasetStore(cfg.run.store, cfg.run.dataset).resolve(cfg.run.version or None)
    src = cfg.model.source
    root = tiny_root(src.tiny_root) if src.is_tiny else None
    return cfg.replace(run={"version": version}, model={"source": dataclasses.replace(src, tiny_root=root)})


def dataset_manifest(cfg, kind: str) -> tuple[DatasetStore, dict]:
    """The pinned version's manifest, refused when the dataset holds another kind of data."""
    ds = DatasetStore(cfg.run.store, cfg.run.dataset)
    m = ds.manifest(cfg.run.version)
    if m.get("kind", kind) != kind:
        raise InputError(
            f"dataset {ds.name!r} v{cfg.run.version} holds {m.get('kind')!r} data, not {kind!r}: "
            "pass a dataset of this model family (--dataset)"
        )
    return ds, m


def check_rows(rows: int, batch: BatchPlan, dataset: str, version: int) -> None:
    need = batch.workers * batch.micro_batch
    if rows < need:
        raise InputError(
            f"dataset {dataset!r} v{version} has {rows} training row(s) for this run, fewer than "
            f"workers x micro-batch = {need}: add data, or lower --workers / --batch-size"
        )


def check_run(cfg, run: RunDir, log: Callable[[str], None]) -> int | None:
    """A run with checkpoints continues only when asked (--resume), and never beyond --steps."""
    latest = run.latest()
    if latest is not None and not cfg.run.resume:
        raise ConfigError(
            f"run {run.run_id} already has checkpoints (latest step {latest}) in {run.uri()}: "
            "pass --resume to continue it, or --run-name for a new run"
        )
    result = run.read_json("result.json") if latest is not None else None
    if result and result.get("status", "completed") == "completed" and result.get("steps") == latest:
        raise ConfigError(
            f"run {run.run_id} finished at step {latest}: a finished run is never trained again in place "
            "(its files may be a registered version); start a new run with --run-name NAME"
        )
    if latest is not None and latest > cfg.run.steps:
        raise ConfigError(
            f"run {run.run_id} is already at step {latest}, past --steps {cfg.run.steps}: "
            f"pass --steps {latest} or more"
        )
    if cfg.run.resume:
        log(
            f"run {run.run_id}: "
            + (f"resuming from step {latest}" if latest is not None else "nothing to resume")
        )
    return latest


def open_run(cfg, family: str, rows: int, log: Callable[[str], None], extra: dict | None = None) -> RunDir:
    """Every check of a pinned config against the store; records run.json on a fresh run (with
    `extra`, e.g. the base an EditLoRA trains on: what `--resume` continues)."""
    batch = cfg.batch_plan()
    check_rows(rows, batch, cfg.run.dataset, cfg.run.version)
    run = RunDir(cfg.run.store, family, cfg.run_id())
    check_run(cfg, run, log)
    if run.read_json("run.json") is None:
        dataset = {"name": cfg.run.dataset, "version": cfg.run.version, "store": cfg.run.store}
        run.write_json(
            "run.json",
            {
                "run_id": run.run_id,
                "config": cfg.to_dict(),
                "dataset": dataset,
                "batch": batch.params(),
                **(extra or {}),
            },
        )
    return run
