"""The one error model: user mistakes are DoodleflowErrors (one line, exit 2), retries follow the hierarchy."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import (
    ConfigError,
    DoodleflowError,
    LostRace,
    NotFoundError,
    StorageFull,
    TransientError,
    retry_condition,
)


def _tasks():
    import doodleflow.tasks as pkg
    from prefect import Task

    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"doodleflow.tasks.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, Task) and obj.__module__ == mod.__name__:
                yield f"{info.name}.{name}", obj


def test_every_retried_task_asks_the_hierarchy():
    """A task with retries retries only what is_retryable allows (never a user error, never a full disk)."""
    retried = {n: t for n, t in _tasks() if t.retries}
    assert len(retried) >= 5
    wrong = [n for n, t in retried.items() if t.retry_condition_fn is not retry_condition]
    assert not wrong, f"tasks with retries but without retry_condition: {wrong}"


def test_retry_condition_follows_the_hierarchy():
    class State:
        def __init__(self, exc):
            self.exc = exc

        def result(self):
            raise self.exc

    assert retry_condition(None, None, State(TransientError("briefly down")))
    assert retry_condition(None, None, State(ConnectionError("reset")))  # unknown infrastructure: retried
    for permanent in (ConfigError("bad"), NotFoundError("gone"), StorageFull(28, "full"), LostRace("lost")):
        assert not retry_condition(None, None, State(permanent))


def test_a_lost_commit_race_is_one_line(tmp_path, capsys):
    """The second writer of a version gets LostRace, which the CLI prints as one line (no traceback)."""
    ds = DatasetStore(str(tmp_path), "raced")
    ds.commit(1, {"version": 1})
    with pytest.raises(LostRace, match="committed by another run") as e:
        ds.commit(1, {"version": 1})
    assert isinstance(e.value, DoodleflowError) and "\n" not in str(e.value)


def test_a_missing_version_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="has no version"):
        DatasetStore(str(tmp_path), "empty").resolve(None)
