"""The training jobs' progress lines: one logger on stderr, used by drivers and rank 0 alike.

stderr because with --json the CLI's stdout must end with its JSON line (and Ray forwards worker
stdout to the driver's asynchronously). Its own handler and no propagation: Ray configures the root
logger in workers, and Ray Train tees a worker's raw stderr, so a propagated record or a bare
print(file=sys.stderr) shows up twice in the driver's output.
"""

from __future__ import annotations

import logging
import sys


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
