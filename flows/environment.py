"""The command's environment (S3, Prefect) checked before work starts, and its failures as one line.

`check` runs after the arguments are parsed: an s3:// store must answer (data/s3errors.py) before a
server, pool or cluster starts. `user_error` maps an environment failure met later, anywhere in an
exception's chain, to the same one-line ConfigError; anything else stays a bug with its traceback.
"""

from __future__ import annotations

import argparse

from doodleflow.infra.errors import DoodleflowError


def check(a: argparse.Namespace) -> None:
    if not hasattr(a, "store"):
        return
    from doodleflow.infra.settings import resolve_store

    store = resolve_store(a.store)
    if store.startswith("s3://"):
        from doodleflow.data.s3errors import check_store

        check_store(store)


def user_error(exc: BaseException) -> DoodleflowError | None:
    """The one-line error for an S3 environment failure in `exc`'s chain (e.g. credentials that
    expired mid-run), else None."""
    if "botocore" not in _modules(exc):
        return None
    from doodleflow.data.s3errors import config_error

    return config_error(exc)


def _modules(exc: BaseException | None) -> set[str]:
    out, seen = set(), set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.add(type(exc).__module__.split(".")[0])
        exc = exc.__cause__ or exc.__context__
    return out
