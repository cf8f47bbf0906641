"""Per-step metrics: the log line every trainer prints, and `metrics.jsonl` in the run directory.

The file is rewritten whole (atomically) at each flush, which works the same on S3 (no appends).
On resume, records after the checkpoint's step are dropped - those steps are trained again - so
the stored curve continues without duplicates and marks where it resumed. With a tracker, each
record also goes to the run's MLflow run as it is logged.
"""

from __future__ import annotations

import json

from doodleflow.training.runs.rundir import RunDir

FILE = "metrics.jsonl"


def format_line(rec: dict, total_steps: int | None = None) -> str:
    """step, loss, lr, data time, step time, samples/s, and MFU / peak memory when measured (GPU)."""
    step = f"{rec['step']}/{total_steps}" if total_steps else str(rec["step"])
    parts = [
        f"step {step}",
        f"loss {rec['loss']:.4f}",
        f"lr {rec['lr']:.2e}",
        f"data {rec['data_time']:.3f}s",
        f"step {rec['step_time']:.3f}s",
        f"{rec['samples_per_s']:.1f} samples/s",
    ]
    if rec.get("mfu") is not None:
        parts.append(f"mfu {100 * rec['mfu']:.1f}%")
    if rec.get("peak_mem_gib") is not None:
        parts.append(f"mem {rec['peak_mem_gib']:.1f}GiB")
    return " | ".join(parts)


class MetricsLog:
    def __init__(self, run: RunDir, resume_step: int = 0, tracker=None) -> None:
        self.run, self.tracker = run, tracker
        self.records = [r for r in self.load(run) if r["step"] <= resume_step] if resume_step else []
        self._pending_resume = resume_step or None
        if tracker is not None and self.records:
            tracker.backfill(self.records)

    @staticmethod
    def load(run: RunDir) -> list[dict]:
        data = run.read_bytes(FILE)
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()] if data else []

    def append(self, rec: dict) -> None:
        if self._pending_resume is not None:
            rec = {**rec, "resumed_from": self._pending_resume}
            self._pending_resume = None
        self.records.append(rec)
        if self.tracker is not None:  # live, as each step is logged (training/runtime/tracking.py)
            self.tracker.log(rec)

    def flush(self) -> None:
        body = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records)
        self.run.write_bytes(FILE, body.encode())
