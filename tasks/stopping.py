"""A cancel in the Prefect UI (or through its API) stops a training job cleanly.

A flow run that the command runs itself (not a worker's deployment run) gets no signal when it is
cancelled in Prefect: only its state becomes CANCELLING. While a training task runs, `watch_cancel`
reads the flow run's state every `POLL_S` seconds and turns CANCELLING into a stop request
(training/runtime/stop.py): the job checkpoints at its next step boundary, and the flow ends Cancelled
(flows/stopping.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from doodleflow.infra.errors import Stopped
from doodleflow.training.runtime import stop

POLL_S = 2.0


def cancelled_state(e: Stopped):
    """What a training task returns for a run stopped on request: a Cancelled state carrying the
    Stopped (the task run shows Cancelled, not Failed; the flow raises it again: flows/stopping.py)."""
    from prefect.states import Cancelled

    return Cancelled(message=str(e), data=e)


@contextlib.contextmanager
def watch_cancel(poll_s: float = POLL_S) -> Iterator[None]:
    from prefect.runtime import flow_run

    flow_run_id = flow_run.id
    done = threading.Event()

    def poll() -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import StateType

        with get_client(sync_client=True) as client:
            while not done.wait(poll_s):
                with contextlib.suppress(Exception):  # the API busy or restarting: ask again later
                    state = client.read_flow_run(flow_run_id).state
                    if state is not None and state.type in (StateType.CANCELLING, StateType.CANCELLED):
                        stop.request("cancelled in Prefect")
                        return

    thread = threading.Thread(target=poll, name="prefect-cancel-watch", daemon=True) if flow_run_id else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        done.set()
        if thread is not None:
            thread.join(timeout=poll_s + 5)
