"""A run's record read before anything starts (light: no torch, Ray or Prefect): whether the run id is
taken, and what `--resume` continues.

`--resume` continues the run as recorded in its `run.json`: the settings come from the record, not
from today's defaults. A flag given with `--resume` must agree with the record, except the ones that
say how long or where it trains (`RESUMABLE`: `--steps` may extend the run, `--workers`, `--gpus`,
the micro-batch, caching, the launch and the evaluation and registration after training). A conflict is refused in one line
naming both values. A finished run (its result.json says it reached its steps) is never trained
again in place: its checkpoint or LoRA may be a registered version (training/runs/seal.py).
"""

from __future__ import annotations

import json
import posixpath
import re

from doodleflow.data.fsutil import filesystem, join
from doodleflow.infra.errors import ConfigError
from doodleflow.infra.settings import runs_root

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
# Settings a resumed run may change: how long and where it trains, not what it learns.
RESUMABLE = ("run.steps", "run.workers", "run.use_gpu", "run.resume", "run.store", "run.run_name",
             "run.checkpoint_every", "run.keep_checkpoints", "run.log_every", "run.fail_at_step",
             "data.micro_batch", "data.cache", "data.latent_cache", "launch.", "publish.")  # fmt: skip


class RunRecord:
    """`<store>/runs/<family>/<run id>/` as far as the checks before start-up need it."""

    def __init__(self, store: str, family: str, run_id: str) -> None:
        self.fs, runs = filesystem(runs_root(store))
        self.root = join(runs, family, run_id)
        self.run_id, self.family = run_id, family

    def json(self, name: str) -> dict | None:
        p = join(self.root, name)
        return json.loads(self.fs.cat_file(p)) if self.fs.exists(p) else None

    def steps(self) -> list[int]:
        """Complete checkpoints (with a state.json), as training/runs/rundir.py counts them."""
        d = join(self.root, "checkpoints")
        if not self.fs.exists(d):
            return []
        out = []
        for p in self.fs.ls(d, detail=False):
            m = _STEP_DIR.match(posixpath.basename(p.rstrip("/")))
            if m and self.fs.exists(join(p, "state.json")):
                out.append(int(m.group(1)))
        return sorted(out)

    def finished_at(self) -> int | None:
        """The step a finished run ended at (result.json, not a cancelled run's), else None."""
        r = self.json("result.json")
        steps = self.steps()
        if r and r.get("status", "completed") == "completed" and steps and r.get("steps") == steps[-1]:
            return int(r["steps"])
        return None


def check_new_run(rec: RunRecord) -> None:
    """A run id that has checkpoints is continued with --resume or renamed, never started over."""
    steps = rec.steps()
    if steps and rec.finished_at() is not None:
        raise ConfigError(
            f"run {rec.run_id} already exists and finished at step {steps[-1]}: pass --run-name NAME for a new run"
        )
    if steps:
        raise ConfigError(
            f"run {rec.run_id} already exists (checkpoints up to step {steps[-1]}): pass --resume to "
            "continue it, or --run-name NAME for a new run"
        )


def check_resumable(rec: RunRecord) -> dict:
    """The run's record; refused when there is nothing to resume or the run finished."""
    record = rec.json("run.json")
    if record is None:
        raise ConfigError(
            f"--resume: no run {rec.run_id} in the store to resume (no run.json): drop --resume to start it, "
            "or name the run with --run-name"
        )
    done = rec.finished_at()
    if done is not None:
        raise ConfigError(
            f"run {rec.run_id} finished at step {done}: a finished run is never trained again in place; "
            "start a new run with --run-name NAME (or --model to fine-tune from its registered version)"
        )
    return record


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resumed(recorded, given: dict, flags: dict[str, str], run_id: str):
    """The recorded config (a TrainConfig) with the given settings that a resume may change; a given
    setting that differs from the record is refused. `given` is {section: {field: value}} of the
    flags actually passed; `flags` names each field's flag ("run.steps" -> "--steps")."""
    rec = _flat(recorded.to_dict())
    keep: dict = {}
    for path, value in _flat(given).items():
        if path.startswith(RESUMABLE):
            section, field = path.split(".", 1)
            if "." not in field:
                keep.setdefault(section, {})[field] = value
            continue
        was = rec.get(path)
        if _norm(value) != _norm(was):
            flag = flags.get(path, path)
            raise ConfigError(
                f"--resume continues run {run_id} as recorded, with {flag} {_show(was)}; "
                f"{flag} {_show(value)} conflicts: drop {flag}, or start a new run with --run-name NAME"
            )
    keep.setdefault("run", {}).update(resume=True, run_name=run_id)
    return recorded.replace(**keep)


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _show(v) -> str:
    return "(unset)" if v is None else str(v)
