"""Live experiment tracking: rank 0 logs each training step to an MLflow run as it happens.

One MLflow run per training run, found again by its tag `doodleflow.run` = `<family>/<run id>`, so a
resumed run or a restarted worker group continues the same MLflow run, and registration
(training/registry) attaches the registered version to it. Steps trained again after a resume are
logged again: MLflow keeps both values of such a step (the first attempt's were lost with the
crash), and the metric `resumed_from` marks where it happened.

Tracking never slows or stops training: records are queued and a background thread sends them
(batched, one call for whatever arrived meanwhile). If the tracking store is unreachable or busy
(SQLite under several parallel jobs), the records wait for the next send, and one warning is printed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from doodleflow.infra.settings import home

RUN_TAG = "doodleflow.run"
KEYS = ("loss", "lr", "grad_norm", "samples_per_s", "step_time", "data_time", "mfu", "peak_mem_gib")
log = logging.getLogger(__name__)
_STOP = object()


class _Image:
    """A queued sample grid (training/runtime/previews.py) and the step it shows."""

    def __init__(self, image, step: int) -> None:
        self.image, self.step = image, step


def experiment_name(family: str) -> str:
    return f"doodleflow-train-{family}"


def run_key(family: str, run_id: str) -> str:
    return f"{family}/{run_id}"


def find_run(client, family: str, run_id: str) -> str | None:
    """The MLflow run id of a training run, or None if it was never tracked (it may sit in a
    sibling experiment made for another artifact root: registry.ensure_experiment)."""
    exps = client.search_experiments(filter_string=f"name LIKE '{experiment_name(family)}%'")
    if not exps:
        return None
    runs = client.search_runs(
        [e.experiment_id for e in exps],
        filter_string=f"tags.`{RUN_TAG}` = '{run_key(family, run_id)}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


class Tracker:
    """Rank 0's handle on the training run's MLflow run (opened lazily, on the first record)."""

    def __init__(
        self,
        tracking_uri: str,
        family: str,
        run_id: str,
        params: dict | None = None,
        artifact_root: str | None = None,
    ) -> None:
        self.uri, self.family, self.run_id = tracking_uri, family, run_id
        self.params, self.artifact_root = params or {}, artifact_root
        self.client: Any = None  # an MlflowClient once opened
        self.mlflow_run: Any = None
        self.pending: list = []
        self.images: list[_Image] = []  # sample grids waiting to be sent
        self.warned = False
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None

    def _open(self) -> None:
        from doodleflow.training.registry.registry import default_artifact_root, ensure_experiment, log_params
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        found = find_run(self.client, self.family, self.run_id)
        if found:
            self.mlflow_run = found
            return
        root = self.artifact_root or default_artifact_root(home())
        exp = ensure_experiment(
            self.client, experiment_name(self.family), f"{root.rstrip('/')}/train-{self.family}"
        )
        run = self.client.create_run(
            exp, run_name=self.run_id, tags={RUN_TAG: run_key(self.family, self.run_id)}
        )
        self.mlflow_run = run.info.run_id
        log_params(self.client, self.mlflow_run, self.params)

    def log(self, rec: dict) -> None:
        """Queue the record; the tracker's thread sends it, so a logged step never waits on MLflow."""
        self.queue.put(record_metrics(rec))
        self._start()

    def log_image(self, image, step: int) -> None:
        """Queue a sample grid (a PIL image): the run gets it as an image at `step` (key `samples`)."""
        self.queue.put(_Image(image, step))
        self._start()

    def backfill(self, records: list[dict]) -> None:
        """On resume: the checkpointed steps the MLflow run does not have yet (a killed worker's
        thread may not have sent them) are sent first, so the MLflow curve has every step."""
        self.queue.put(("backfill", records))
        self._start()

    def _start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._drain, name="mlflow-tracker", daemon=True)
            self.thread.start()

    def _missing(self, records: list[dict]) -> list[tuple]:
        try:
            if self.mlflow_run is None:
                self._open()
            have = {m.step for m in self.client.get_metric_history(self.mlflow_run, "loss")}
        except Exception:  # unreachable: _send warns and keeps them
            have = set()
        return [m for r in records if int(r["step"]) not in have for m in record_metrics(r)]

    def _drain(self) -> None:
        """Send what has arrived in one batch; on failure keep it for the next arrival (or finish)."""
        from mlflow.entities import Metric

        stop = False
        while not stop:
            items = [self.queue.get()]
            while not self.queue.empty():
                items.append(self.queue.get_nowait())
            stop = _STOP in items
            for item in items:
                if item is _STOP:
                    continue
                if isinstance(item, _Image):
                    self.images.append(item)
                    continue
                metrics = self._missing(item[1]) if isinstance(item, tuple) else item  # tuple: a backfill
                self.pending += [Metric(*m) for m in metrics]
            self._send()

    def _send(self) -> None:
        try:
            if self.mlflow_run is None:
                self._open()
            while self.pending:
                self.client.log_batch(self.mlflow_run, metrics=self.pending[:900])  # cap: 1000 a batch
                del self.pending[:900]
            while self.images:
                img = self.images[0]
                self.client.log_image(self.mlflow_run, img.image, key="samples", step=img.step)
                self.images.pop(0)
        except Exception as e:  # tracking must never stop training
            if not self.warned:
                log.warning(
                    "MLflow tracking at %s unavailable (%s): will retry with the next step", self.uri, e
                )
                self.warned = True

    def finish(self, result: dict) -> None:
        """Last records, and the run's summary figures as tags; the run is ended FINISHED (KILLED for a
        run stopped on request)."""
        if self.thread is None:
            return
        self.queue.put(_STOP)
        self.thread.join(timeout=120)
        if self.mlflow_run is None:
            return
        try:
            for k in ("steps", "final_loss", "median_samples_per_s", "checkpoint"):
                if result.get(k) is not None:
                    self.client.set_tag(self.mlflow_run, f"doodleflow.{k}", str(result[k]))
            stopped = result.get("status") == "cancelled"  # stopped on request: MLflow's KILLED
            self.client.set_terminated(self.mlflow_run, "KILLED" if stopped else "FINISHED")
        except Exception as e:
            log.warning("MLflow tracking at %s: could not close the run (%s)", self.uri, e)


def record_metrics(rec: dict) -> list[tuple]:
    """(key, value, timestamp ms, step) of a record's numeric metrics."""
    ms, step = int(rec.get("time", time.time()) * 1000), int(rec["step"])
    return [
        (k, float(rec[k]), ms, step) for k in (*KEYS, "resumed_from") if isinstance(rec.get(k), (int, float))
    ]


def tracking_config(store: str | None = None) -> dict:
    """What the driver hands its workers: the tracking URI resolved here (MLFLOW_TRACKING_URI, else
    the SQLite store under DOODLEFLOW_HOME), so workers on other nodes log to the same place, and
    the tracking store ready to use."""
    from doodleflow.training.registry.registry import Registry

    reg = Registry(home(), store=store)
    # Create (or migrate) the tracking store here, before any worker exists: MLflow builds a SQLite
    # store's schema in many steps, and a worker killed halfway (or two processes racing to build
    # it) would leave it unusable.
    reg.client.search_experiments(max_results=1)
    return {"uri": reg.tracking_uri, "artifact_root": reg.artifact_root}


def make_tracker(tracking: dict | None, family: str, run_id: str, params: dict) -> Tracker | None:
    if not tracking:
        return None
    return Tracker(tracking["uri"], family, run_id, params, tracking.get("artifact_root"))
