"""A training run stopped on request ends its flow run Cancelled (not Failed), and the CLI says how
to continue it. The stop itself: training/runtime/stop.py; the signals: flows/interrupt.py."""

from __future__ import annotations

from doodleflow.infra.errors import Stopped


def cancelled(e: Stopped):
    """The flow's final state for a run that stopped on request: Cancelled, carrying the Stopped."""
    from prefect.states import Cancelled

    return Cancelled(message=str(e), data=e)


def unless_stopped(r):
    """A training task's return value: its result, or, for a run stopped on request (the task
    returned a Cancelled state, tasks/stopping.py), the Stopped it carries, raised."""
    from prefect.states import State

    if isinstance(r, State):
        e = r.result(raise_on_failure=False)
        raise e if isinstance(e, BaseException) else Stopped(r.message or "stopped on request")
    return r


def outcome(state):
    """A flow's result from its final state (`flow(..., return_state=True)`): a failed or cancelled
    run raises its exception (a Stopped for a cancelled one), as calling the flow plainly would."""
    r = state.result(raise_on_failure=False)
    if isinstance(r, BaseException):
        raise r
    if not state.is_completed():
        raise RuntimeError(f"flow run ended {state.type.value}: {state.message}")
    return r


def quiet_cancelled_tasks() -> None:
    """Prefect logs a task run that ends Cancelled at ERROR level; a run stopped on request is no error,
    and the flow run's own line (and the CLI's) already say it stopped."""
    import logging

    logging.getLogger("prefect.task_runs").addFilter(
        lambda r: not str(r.msg).startswith("Finished in state Cancelled(")
    )
