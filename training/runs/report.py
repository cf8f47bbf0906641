"""Run summaries for orchestrators: markdown with the loss curve inlined, and a metrics table."""

from __future__ import annotations

import base64


def metrics_table(records: list[dict], max_rows: int = 200) -> list[dict]:
    """Every k-th logged step (and always the last), with the columns worth a glance."""
    if not records:
        return []
    k = max(1, -(-len(records) // max_rows))
    keep = records[::k] + ([records[-1]] if (len(records) - 1) % k else [])
    cols = ("step", "loss", "lr", "samples_per_s", "data_time", "step_time", "mfu", "peak_mem_gib")
    return [{c: (round(r[c], 6) if isinstance(r.get(c), float) else r.get(c)) for c in cols} for r in keep]


def run_markdown(title: str, result: dict, png: bytes | None) -> str:
    """A run's summary; the loss curve is embedded as a data: URI (artifacts cannot hold files)."""
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    for key in (
        "run_id",
        "steps",
        "final_loss",
        "resumed_from",
        "world_size",
        "replicas_agree",
        "median_samples_per_s",
        "checkpoint",
        "run_dir",
        "metrics",
        "loss_curve",
    ):
        if result.get(key) is not None:
            lines.append(f"| {key} | `{result[key]}` |")
    if png:
        lines += ["", f"![loss curve](data:image/png;base64,{base64.b64encode(png).decode()})"]
    return "\n".join(lines) + "\n"
