"""Which Prefect task runner executes a flow's tasks: a local pool by default, Ray when asked."""

from __future__ import annotations

import os
from typing import Any

from doodleflow.infra.settings import ray_address


def make_task_runner(workers: int | None = None, ray: str | None = None):
    """`ray` is a cluster address ('auto', 'host:port', 'ray://...') or 'local' to start one here."""
    address = ray_address(ray)
    if address:
        from doodleflow.training.runtime.logs import quiet_ray
        from prefect_ray import RayTaskRunner

        quiet_ray()  # Ray's driver messages to the log file; workers' output stays in Ray's session logs
        init: dict[str, Any] = {
            "include_dashboard": False,
            "ignore_reinit_error": True,
            "log_to_driver": False,
        }
        if address == "local":
            cpus = workers or os.cpu_count() or 1
            # Cap the object store: small machines and containers have a small /dev/shm.
            # address "local": a new cluster here, never one a `ray start --head` left on this machine.
            init.update(address="local", num_cpus=cpus, object_store_memory=200 * 1024**2)
            return RayTaskRunner(init_kwargs=init)
        return RayTaskRunner(address=address, init_kwargs=init)
    from prefect.task_runners import ProcessPoolTaskRunner

    return ProcessPoolTaskRunner(max_workers=workers or os.cpu_count() or 1)
