"""What live MLflow tracking costs a training step (training/runtime/tracking.py).

Baseline, in the same run: the usual way, one synchronous MLflow call per logged step on the
training thread (what `mlflow.log_metrics` in a loop does). Ours: `Tracker.log` queues the record and
a background thread sends whatever has arrived in one batch. Two figures per round, ratios taken
within the round: the training thread's cost per logged step, and the time until every record is
stored in MLflow (delivery). The tracking store is MLflow's SQLite file, the embedded default.

    .venv/bin/python bench/tracking.py [--steps 50] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import machine_line, table


def _records(n: int, offset: int) -> list[dict]:
    keys = ("loss", "lr", "grad_norm", "samples_per_s", "step_time", "data_time")
    return [{"step": offset + s, "time": time.time(), **{k: 1.0 / (s + 1) for k in keys}} for s in range(n)]


def _sync(client, run_id: str, recs: list[dict]) -> float:
    from mlflow.entities import Metric

    t0 = time.perf_counter()
    for r in recs:
        ms = int(r["time"] * 1000)
        client.log_batch(
            run_id, metrics=[Metric(k, v, ms, r["step"]) for k, v in r.items() if k not in ("step", "time")]
        )
    return time.perf_counter() - t0


def _queued(tracker, client, recs: list[dict]) -> tuple[float, float]:
    """(seconds on the calling thread, seconds until MLflow holds every record)."""
    t0 = time.perf_counter()
    for r in recs:
        tracker.log(r)
    caller = time.perf_counter() - t0
    last = recs[-1]["step"]
    while not (
        tracker.mlflow_run
        and any(m.step == last for m in client.get_metric_history(tracker.mlflow_run, "loss"))
    ):
        time.sleep(0.002)
    return caller, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="logged steps per case per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    import mlflow
    from doodleflow.training.runtime.tracking import Tracker
    from mlflow import MlflowClient

    tmp = tempfile.mkdtemp(prefix="doodleflow-bench-tracking-")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    sync_run = client.create_run(client.create_experiment("bench-sync")).info.run_id
    tracker = Tracker(uri, "bench", "queued", {"bench": True}, artifact_root=f"{tmp}/artifacts")
    _queued(tracker, client, _records(2, 0))  # opens the run (one-off: experiment + run creation)
    _sync(client, sync_run, _records(2, 0))
    rows = []
    for r in range(a.rounds):
        recs = _records(a.steps, 1000 * (r + 1))
        sync = _sync(client, sync_run, recs)
        caller, delivered = _queued(tracker, client, recs)
        rows.append({"sync": sync, "caller": caller, "delivered": delivered})
        print(f"  round {r + 1}/{a.rounds}: sync {1e3 * sync / a.steps:.2f} ms/step, queued {1e6 * caller / a.steps:.1f} us/step, "
              f"all delivered after {1e3 * delivered:.0f} ms")  # fmt: skip
    tracker.finish({"steps": a.steps})
    med = {k: statistics.median(x[k] for x in rows) for k in rows[0]}
    ratio_caller = statistics.median(x["sync"] / x["caller"] for x in rows)
    ratio_delivery = statistics.median(x["sync"] / x["delivered"] for x in rows)
    print(machine_line({"mlflow": mlflow.__version__}))
    print(f"{a.steps} logged steps per case, {a.rounds} rounds, MLflow SQLite store\n")
    print(table(["case", "training-thread cost per logged step", "all records stored after", "vs sync (median of rounds)"], [
        ["sync: one MLflow call per step (baseline)", f"{1e3 * med['sync'] / a.steps:.2f} ms", f"{1e3 * med['sync']:.0f} ms", "1.00x"],
        ["ours: Tracker.log (queue) + background batches", f"{1e6 * med['caller'] / a.steps:.1f} us",
         f"{1e3 * med['delivered']:.0f} ms", f"{ratio_caller:.0f}x less training-thread time; delivery {ratio_delivery:.2f}x"],
    ]))  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {"rounds": rows, "caller_ratio": ratio_caller, "delivery_ratio": ratio_delivery}, f, indent=2
            )


if __name__ == "__main__":
    main()
