"""The run a training command is about to start, settled before any server starts: a new run id that
is already taken is refused (say how to resume or rename), and `--resume` continues the run as its
record says (training/runs/run_record.py: the record's settings, conflicting flags refused)."""

from __future__ import annotations

import argparse
import dataclasses

from doodleflow.flows.commands.options import Opt, flag_names, given_overrides
from doodleflow.training.runs.run_record import RunRecord, check_new_run, check_resumable, resumed


def _merge(into: dict, more: dict) -> dict:
    for k, v in more.items():
        if isinstance(v, dict):
            _merge(into.setdefault(k, {}), v)
        else:
            into[k] = v
    return into


def settle_run(cfg, run_id: str, family: str, a: argparse.Namespace, opts: list[Opt],
               given: dict, flags: dict[str, str], fix_record=None):  # fmt: skip
    """The config to launch: `cfg` for a new run, else the recorded run's config (with the flags a
    resume may change). `given`/`flags`: settings passed outside `opts` ({section: {field: value}}) and
    their flag names; `fix_record(recorded config, record)` adjusts a family's recorded config first."""
    rec = RunRecord(cfg.run.store, family, run_id)
    if not cfg.run.resume:
        check_new_run(rec)
        return cfg
    record = check_resumable(rec)
    recorded = type(cfg).from_dict(record["config"])
    if fix_record is not None:
        recorded = fix_record(recorded, record)
    passed = _merge(given_overrides(a, opts), given)
    out = resumed(recorded, passed, {**flag_names(opts), **flags}, run_id)
    return out.replace(run={"store": cfg.run.store}, publish=dataclasses.asdict(cfg.publish))
