"""Our lines on the terminal, library noise in a log file.

`log`: the training jobs' progress lines, one logger on stderr, used by drivers and rank 0 alike.
stderr because with --json the CLI's stdout must end with its JSON line. Its own handler and no
propagation: Ray configures the root logger in workers, and Ray Train tees a worker's raw stderr, so a
propagated record or a bare print(file=sys.stderr) shows up twice in the driver's output.

`quiet_libraries` (the CLI, at start) and `quiet_ray` (right after importing Ray) send what libraries
log - Ray's driver messages, Python warnings (deprecations, fallbacks), HF and cloud client chatter -
to the command's log file under $DOODLEFLOW_HOME/logs/ instead of the terminal. The file's path is
in $DOODLEFLOW_LOG_FILE, so the processes the command starts append to the same file.
"""

from __future__ import annotations

import logging
import os
import sys
import time

ENV = "DOODLEFLOW_LOG_FILE"
LIBRARIES = ("py.warnings", "ray", "transformers", "diffusers", "urllib3", "botocore", "s3fs", "fsspec",
             "filelock", "mlflow", "alembic", "httpx", "numexpr", "albumentations")  # fmt: skip
_file_handler: logging.Handler | None = None


def _logger() -> logging.Logger:
    log = logging.getLogger("doodleflow.train")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s | %(message)s", "%H:%M:%S"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def log(msg: str) -> None:
    _logger().info(msg)


def log_path() -> str:
    """This command's log file (created on first use)."""
    path = os.environ.get(ENV)
    if not path:
        from doodleflow.infra.settings import home

        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path = os.environ[ENV] = os.path.join(home(), "logs", name)
    return path


def file_handler() -> logging.Handler:
    global _file_handler
    if _file_handler is None:
        path = log_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _file_handler = logging.FileHandler(path, delay=True, encoding="utf-8")
        fmt = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
        _file_handler.setFormatter(logging.Formatter(fmt))
    return _file_handler


def to_log_file(*names: str) -> None:
    """Those loggers write to the log file only (their own handlers, e.g. Ray's stderr one, removed)."""
    h = file_handler()
    for name in names:
        lg = logging.getLogger(name)
        lg.handlers = [h]
        lg.propagate = False


def quiet_libraries() -> str:
    """At the CLI's start: warnings and library loggers to the log file; no colour codes when stderr
    is not a terminal (Prefect's console, rich). Returns the log file's path."""
    if not sys.stderr.isatty():
        os.environ.setdefault("PREFECT_LOGGING_COLORS", "false")
        os.environ.setdefault("NO_COLOR", "1")
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    # One fallback notice per process (transformers without torchvision, ...) is noise on a terminal.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    logging.captureWarnings(True)
    to_log_file(*LIBRARIES)
    return log_path()


def quiet_ray() -> None:
    """After `import ray` (which gives its logger a stderr handler): Ray's driver messages to the log
    file. Workers' output stays in Ray's session logs (ray.init(log_to_driver=False))."""
    to_log_file("ray")


def quiet_ray_data() -> None:
    """For the training jobs, which stream with Ray Data: its import installs a stderr handler on
    "ray.data" (its own logging config), so the import happens here and the handler is replaced. Not in
    `quiet_ray`: a refresh on Ray does not use Ray Data and need not pay for importing it."""
    import ray.data  # noqa: F401

    to_log_file("ray.data")
