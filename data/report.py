"""Human-readable summaries of a refresh (Prefect artifact, CLI)."""

from __future__ import annotations

import re
import time

import pyarrow.compute as pc
from doodleflow.data.store import DatasetStore


def label_counts(ds: DatasetStore, version: int) -> dict[str, int]:
    t = ds.read_table(version, columns=["label_name"])
    vc = pc.value_counts(t["label_name"]).to_pylist() if t.num_rows else []
    return dict(sorted(((d["values"] or "?", d["counts"]) for d in vc), key=lambda kv: -kv[1]))


def throughput(stats: list[dict], wall_seconds: float, workers: int) -> dict:
    built = [s for s in stats if not s.get("reused")]
    rows = sum(s["rows"] for s in built)
    busy = sum(s["seconds"] for s in built)
    return {
        "shards_built": len(built),
        "shards_reused": len(stats) - len(built),
        "samples_built": rows,
        "wall_seconds": round(wall_seconds, 2),
        "samples_per_s": round(rows / wall_seconds, 2) if wall_seconds else 0.0,
        "samples_per_s_per_core": round(rows / busy, 2) if busy else 0.0,
        "workers": workers,
    }


class ShardProgress:
    """One log line per finished shard that keeps two rates apart: the shard's own build rate (its
    rows over its build seconds, on one worker) and the run's wall rate (rows done so far over the
    seconds since the first shard was submitted, start-up and queueing included)."""

    def __init__(self, n_units: int, total: int, noun: str = "samples") -> None:
        self.n_units, self.total, self.noun = n_units, total, noun
        self.done_units = self.done = 0
        self.t0 = time.perf_counter()

    def line(self, s: dict) -> str:
        self.done_units += 1
        self.done += s["rows"]
        wall = max(time.perf_counter() - self.t0, 1e-9)
        n = self.noun
        if s.get("reused"):
            own = f"{s['rows']} {n} already built"
        else:
            rate = s["rows"] / s["seconds"] if s["seconds"] else 0.0
            own = f"{s['rows']} {n} built in {s['seconds']:.2f}s ({rate:.1f} {n}/s build)"
        return (
            f"shard {self.done_units}/{self.n_units} {s['key'][:12]}: {own}; run: {self.done}/{self.total} "
            f"{n} in {wall:.1f}s wall ({self.done / wall:.1f} {n}/s wall)"
        )


def markdown(summary: dict, labels: dict[str, int], speed: dict) -> str:
    lines = [
        f"# Dataset `{summary['dataset']}` version {summary['version']}"
        + ("" if summary.get("created", True) else " (unchanged: no new version)"),
        "",
        f"- path: `{summary['path']}`",
        f"- samples: {summary['samples_total']} total, {summary['samples_new']} new; boxes kept {summary['boxes_kept']}",
        f"- throughput: {speed['samples_per_s']} samples/s wall, {speed['samples_per_s_per_core']} samples/s per core "
        f"({speed['shards_built']} shards built, {speed['shards_reused']} reused)",
        "",
        "| kind | reason | count |",
        "|---|---|---|",
    ]
    lines += [f"| dropped | {k} | {v} |" for k, v in summary["dropped"].items()]
    lines += [f"| quarantined | {k} | {v} |" for k, v in summary["quarantined"].items()]
    lines += ["", "| label | samples |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in list(labels.items())[:50]]
    return "\n".join(lines)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")


def reason_table(summary: dict) -> list[dict]:
    rows = [{"kind": "dropped", "reason": k, "count": v} for k, v in summary["dropped"].items()]
    rows += [{"kind": "quarantined", "reason": k, "count": v} for k, v in summary["quarantined"].items()]
    return rows
