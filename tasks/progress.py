"""Progress of a long stage where users look: the Prefect run and one terminal line.

`StageProgress`, made inside a Prefect flow or task run, creates a progress artifact for the stage
(shards built in a refresh, steps of a training job) and, as work advances (`update`, from any
thread):

- updates the artifact at most every `ARTIFACT_EVERY_S`;
- sends the stage's line (e.g. loss, rate, ETA) to the run's Prefect logs at most every `LOG_EVERY_S`
  (to the API only: the terminal gets its own line);
- keeps one line per stage on the terminal: rewritten in place on a TTY, and when stderr is a file or
  a pipe, a plain line at most every `TERMINAL_EVERY_S` (no escape codes).
`close()` writes the stage's last state everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator

ARTIFACT_EVERY_S = 3.0
LOG_EVERY_S = 10.0
TERMINAL_EVERY_S = 30.0


def _api_logger() -> logging.Logger:
    """Records to the Prefect API only (Prefect's console handler prints every run log line)."""
    log = logging.getLogger("doodleflow.progress")
    if not log.handlers:
        from prefect.logging.handlers import APILogHandler

        log.addHandler(APILogHandler())
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


class StageProgress:
    def __init__(self, stage: str, total: int, key: str, stream=None) -> None:
        from prefect.artifacts import create_progress_artifact
        from prefect.context import FlowRunContext, TaskRunContext

        self.stage, self.total = stage, max(int(total), 1)
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        task, flow = TaskRunContext.get(), FlowRunContext.get()
        self.ids = {
            "task_run_id": str(task.task_run.id) if task else None,
            "flow_run_id": str(task.task_run.flow_run_id if task else flow.flow_run.id)
            if (task or flow)
            else None,
        }
        self.artifact = None
        if task or flow:  # outside a Prefect run (a library call): the terminal line only
            with contextlib.suppress(Exception):  # progress is best effort: never fails the run
                self.artifact = create_progress_artifact(0.0, key=key, description=f"{stage}: progress")
        self._lock = threading.Lock()
        self._last = {"artifact": 0.0, "log": 0.0, "terminal": 0.0}
        self._line = ""
        self._printed = ""

    def _due(self, what: str, every: float, now: float, force: bool) -> bool:
        if force or now - self._last[what] >= every:
            self._last[what] = now
            return True
        return False

    def update(self, done: int, line: str, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            self._line = line
            pct = min(100.0, 100.0 * done / self.total)
            if self.artifact is not None and self._due("artifact", ARTIFACT_EVERY_S, now, force):
                from prefect.artifacts import update_progress_artifact

                with contextlib.suppress(Exception):
                    update_progress_artifact(self.artifact, pct)
            if self.ids["flow_run_id"] and self._due("log", LOG_EVERY_S, now, force):
                with contextlib.suppress(Exception):
                    _api_logger().info(f"{self.stage}: {line}", extra=self.ids)
            self._terminal(f"{self.stage}: {line}", now, force)

    def _terminal(self, text: str, now: float, force: bool) -> None:
        if self.tty:  # one line, rewritten in place
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()
        elif text != self._printed and self._due("terminal", TERMINAL_EVERY_S, now, force):
            self._printed = text  # close() after a final update: the same line once, not twice
            self.stream.write(f"{time.strftime('%H:%M:%S')} | {text}\n")
            self.stream.flush()

    def close(self, done: int | None = None, line: str | None = None) -> None:
        self.update(self.total if done is None else done, line or self._line, force=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def artifact_key(*parts: str | None) -> str:
    """Prefect artifact keys take lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts if p).lower()).strip("-")


@contextlib.contextmanager
def training_progress(stage: str, total_steps: int, *key: str | None) -> Iterator[StageProgress]:
    """The progress of the training jobs launched in the block (rank 0's progress.json, followed by
    the driver: training/runtime/progress.py) as this run's progress artifact, log lines and one
    terminal line."""
    from doodleflow.training.runtime import previews, progress

    sp = StageProgress(stage, total_steps, artifact_key("progress", *key))
    samples = samples_artifact(stage, artifact_key("samples", *key))
    with progress.reporting(lambda p: sp.update(p["step"], p["line"])), previews.reporting(samples):
        try:
            yield sp
        finally:
            sp.close()


def samples_artifact(stage: str, key: str):
    """A sink for samples while training (training/runtime/previews.py): each new grid becomes the
    latest version of a markdown artifact on this run's page. The driver's follower calls it from its
    own thread, so the Prefect run context is captured here and entered for each call."""
    import base64
    import contextvars

    from prefect.artifacts import create_markdown_artifact

    captured = contextvars.copy_context()

    def emit(p: dict) -> None:
        png = p.get("png") or b""
        image = (
            f"![samples at step {p['step']}](data:image/png;base64,{base64.b64encode(png).decode()})"
            if 0 < len(png) < 4_000_000
            else f"(grid: `{p['grid']}`)"
        )
        steps = ", ".join(str(x["step"]) for x in p["points"])
        text = (
            f"# {stage}: samples while training\n\nrows: the fixed inputs; columns: steps {steps}. "
            f"Grid: `{p['grid']}`.\n\n{image}\n"
        )
        captured.copy().run(create_markdown_artifact, text, key=key, description=f"{stage}: samples")

    return emit
