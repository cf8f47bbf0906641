"""A refresh plan by reference: the plan and its diff as files in the store, and a small handle to them.

Prefect visits every task parameter (to find upstream futures) and may hash or persist parameters and
results; a plan is sized by its inputs, so tasks exchange a `PlanRef` (a path and a few counts) and the
task that needs the plan reads it back. Files: Parquet for the tables, JSON for the rest (no pickle).
Written under `datasets/<name>/plans/<id>/`, beside the units table the planner wrote there first
(data/units.py: the work units are references into it), removed after the commit; a killed run's
leftovers are removed by the next plan after a day.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from doodleflow.data.boxes import KEPT_COLUMNS, BoxTriage
from doodleflow.data.fsutil import atomic_write, join
from doodleflow.data.plan import InputPlan
from doodleflow.data.refresh import Diff
from doodleflow.data.store import DatasetStore
from doodleflow.data.units import drop_plan_folder, new_plan_folder


@dataclass(frozen=True)
class PlanRef:
    """What the flow needs to know about a plan, and where the plan is."""

    path: str | None  # None when nothing was planned (inputs unchanged)
    previous: int | None
    jobs: int = 0
    new_jobs: int = 0
    images: int = 0
    images_absent: int = 0
    warnings: tuple[str, ...] = ()
    unchanged: dict | None = field(default=None, hash=False)  # the summary, when the snapshot matched


def _write_df(ds: DatasetStore, path: str, df: pd.DataFrame | pa.Table | None) -> None:
    if df is None:
        return
    t = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    sink = io.BytesIO()
    pq.write_table(t, sink, compression="zstd")
    atomic_write(ds.fs, path, sink.getvalue())


def _read_df(ds: DatasetStore, path: str) -> pd.DataFrame | None:
    if not ds.fs.exists(path):
        return None
    with ds.fs.open(path, "rb") as f:
        return pq.read_table(f).to_pandas()


def _carry_json(carry: list[dict]) -> list[dict]:
    return [{**c, "keep": None if c["keep"] is None else sorted(c["keep"])} for c in carry]


def save_plan(ds: DatasetStore, plan: InputPlan, diff: Diff, path: str | None = None) -> PlanRef:
    """Write the plan into `path`, the plan folder that holds its units table (a new one if None)."""
    path = path or new_plan_folder(ds)
    # What the commit reads: sized by images and rejects. The jobs, kept boxes and new jobs (each
    # ~11M rows at full scale) stay out: the units table holds the new jobs, the commit needs counts.
    tables = {
        "images": plan.images,
        "triage_quarantine": plan.triage.quarantine,
        "missing": plan.triage.missing,
        "quarantine": plan.quarantine,
        "absent": plan.absent,
    }
    for name, df in tables.items():
        _write_df(ds, join(path, f"{name}.parquet"), df)
    meta = {
        "inputs": plan.inputs,
        "dropped": plan.triage.dropped,
        "boxes_kept": plan.boxes_kept,
        "warnings": plan.warnings,
        "previous": diff.previous,
        "carry": _carry_json(diff.carry),
        "carried_quarantine": diff.carried_quarantine,
        "carried_dropped": diff.carried_dropped,
    }
    atomic_write(ds.fs, join(path, "plan.json"), json.dumps(meta, default=int).encode())
    return PlanRef(
        path=path,
        previous=diff.previous,
        jobs=len(plan.jobs),
        new_jobs=len(diff.new_jobs),
        images=int(plan.inputs.get("images", 0)),
        images_absent=int(plan.inputs.get("images_absent", 0)),
        warnings=tuple(plan.warnings),
    )


def load_plan(ds: DatasetStore, ref: PlanRef) -> tuple[InputPlan, Diff]:
    assert ref.path is not None, "an unchanged plan has nothing to load"
    meta = json.loads(ds.fs.cat_file(join(ref.path, "plan.json")))
    t = {n: _read_df(ds, join(ref.path, f"{n}.parquet")) for n in _NAMES}
    triage = BoxTriage(
        kept=pd.DataFrame(columns=KEPT_COLUMNS),
        quarantine=t["triage_quarantine"],
        dropped=meta["dropped"],
        absent=pa.Table.from_pandas(t["absent"], preserve_index=False),
        missing=t["missing"],
    )
    plan = InputPlan(
        pd.DataFrame(columns=["image_id", "sample_id"]),
        t["images"],
        triage,
        t["quarantine"],
        meta["inputs"],
        triage.absent,
        meta["warnings"],
        kept_count=meta["boxes_kept"],
    )
    carry = [{**c, "keep": None if c["keep"] is None else set(c["keep"])} for c in meta["carry"]]
    diff = Diff(meta["previous"], pd.DataFrame(), carry, meta["carried_quarantine"], meta["carried_dropped"])
    return plan, diff


_NAMES = ("images", "triage_quarantine", "missing", "quarantine", "absent")


def drop_plan(ds: DatasetStore, ref: PlanRef) -> None:
    drop_plan_folder(ds, ref.path)
