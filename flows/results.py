"""Where Prefect keeps persisted task results (the shard caches that let a rerun skip finished
work): beside the data. A local store keeps Prefect's default (PREFECT_LOCAL_STORAGE_PATH under
PREFECT_HOME); an s3:// store gets `<store>/prefect-results`, through the same fsspec/s3fs stack
and AWS environment as the data. Prefect needs the storage block saved server-side; it holds only
the base path: credentials stay in the environment.
"""

from __future__ import annotations

import hashlib


def result_storage(store: str):
    """None (Prefect's default) for a local store, else a saved RemoteFileSystem block."""
    if not store.startswith("s3://"):
        return None
    from prefect.filesystems import RemoteFileSystem

    basepath = f"{store.rstrip('/')}/prefect-results"
    block = RemoteFileSystem(basepath=basepath)
    block.save(f"doodleflow-results-{hashlib.sha256(basepath.encode()).hexdigest()[:12]}", overwrite=True)
    return block


def on_store(task, store: str):
    """`task` with its results persisted beside `store`'s data."""
    storage = result_storage(store)
    return task.with_options(result_storage=storage) if storage is not None else task
