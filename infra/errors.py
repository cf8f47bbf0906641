"""The one error hierarchy of doodleflow.

Every error a user can cause or fix derives from `DoodleflowError`: the CLI prints its message on one
line and exits 2. Anything else is a bug and keeps its traceback. Whether a failed task is retried is
decided here too (`is_retryable`), by the kind of failure, never by a built-in exception type.
"""

from __future__ import annotations

import errno


class DoodleflowError(Exception):
    """Root of every user-facing error. `transient` says whether trying again can help."""

    transient = False


class InputError(DoodleflowError, ValueError):
    """A structural problem with the input (missing file or column, unreadable CSV, bad image file).

    Raised before any work starts; the message names the file and, where it applies, the row or field.
    """


class ConfigError(DoodleflowError, ValueError):
    """A bad argument, name or setting, or an environment that cannot do what was asked.

    The message names the argument or setting and how to fix it.
    """


class NotFoundError(DoodleflowError, LookupError):
    """A dataset, version, model or artifact that does not exist."""


class TamperedArtifact(DoodleflowError):
    """A registered file no longer matches the digest recorded when it was registered."""


class LostRace(DoodleflowError):
    """Another writer committed first (a dataset version, a run directory lease); nothing was lost."""


class StorageFull(DoodleflowError, OSError):
    """No space left on the store's device: retrying cannot help until space is freed."""


class Stopped(DoodleflowError):
    """A run stopped on request (Ctrl-C, SIGTERM, a cancel in Prefect) at a step boundary, after writing
    a checkpoint: recorded as cancelled, never retried; `--resume` continues it."""

    def __init__(self, message: str, run_id: str = "", step: int | None = None) -> None:
        super().__init__(message, run_id, step)  # all in args: the exception pickles whole
        self.run_id, self.step = run_id, step

    def __str__(self) -> str:
        return str(self.args[0])


class TransientError(DoodleflowError):
    """A failure that may pass (a service briefly unreachable, a preempted worker): retried."""

    transient = True


def is_retryable(exc: BaseException) -> bool:
    """Retry transient failures and unknown infrastructure failures; never a user error or a full disk.

    An unknown exception (a worker lost, a network hiccup inside a library) gets its retries: a bug
    fails the same way again, which costs a retry but hides nothing.
    """
    if isinstance(exc, DoodleflowError):
        return exc.transient
    return not is_disk_full(exc)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: OSError, where: str) -> StorageFull:
    """The one-line message for a full disk, naming where the write went."""
    return StorageFull(f"no space left on the device of {where} ({exc.strerror}); free space and run again")


def retry_condition(task, task_run, state) -> bool:
    """Prefect's `retry_condition_fn`: retry only what `is_retryable` allows."""
    try:
        state.result()
    except Exception as e:  # the task's own exception, re-raised by Prefect
        return is_retryable(e)
    return True
