"""Joining or starting a Ray cluster, and sizing training workers so Ray Data keeps CPU.

Imported only by the Ray entry modules (e.g. training/runtime/launch.py).
"""

from __future__ import annotations

import os

from doodleflow.infra.settings import ray_address


def object_store_bytes() -> int:
    """Enough for a few decoded 512px batches, small enough for containers with little /dev/shm."""
    env = os.environ.get("DOODLEFLOW_RAY_OBJECT_STORE_MB")
    if env:
        return int(env) * 2**20
    return int(min(2 * 2**30, max(200 * 2**20, 0.05 * _ram_bytes())))


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def init_ray(address: str | None = None) -> str:
    """Join `address` / $RAY_ADDRESS, or start a local cluster sized to this machine. Returns which."""
    import ray
    from doodleflow.training.runtime.logs import quiet_ray, quiet_ray_data

    quiet_ray()  # Ray's driver messages to the log file
    quiet_ray_data()  # and Ray Data's, which the training jobs stream with
    if ray.is_initialized():
        return "already connected"
    addr = ray_address(address)
    if addr and addr != "local":
        ray.init(address=addr, ignore_reinit_error=True, log_to_driver=False)
        return addr
    ray.init(
        # "local", not None: with None, Ray joins the cluster a `ray start --head` on this machine
        # last wrote to /tmp/ray/ray_current_cluster (and then rejects num_cpus).
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=object_store_bytes(),
        ignore_reinit_error=True,
        # Workers' output (library warnings, Ray Train's internals) stays in Ray's session logs; the
        # driver shows rank 0's progress (training/runtime/progress.py).
        log_to_driver=False,
    )
    return "local"


def cpus_per_worker(num_workers: int, use_gpu: bool) -> float:
    """CPUs each training worker reserves. Ray Data runs in what is left; if the workers reserve
    everything the data pipeline has no budget and training stalls (Ray issue ray-project/ray#41603: the trainer hands its reservation to Ray Data as `exclude_resources`). Keep a quarter of
    the cluster (at least one CPU) for it; with 2 cores and 2 workers that is 0.5 CPU each."""
    import ray

    total = float(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    spare = total - max(1.0, 0.25 * total)
    share = spare / max(num_workers, 1)
    if use_gpu:
        share = min(share, 8.0)  # a GPU step needs a few cores for the host side, not the whole node
    return max(0.1, round(share * 20) / 20)  # Ray accepts fractions; 0.05 steps read better in logs


def arrow_filesystem(store_uri: str, uris: list[str]):
    """(pyarrow filesystem or None, paths) for Ray Data readers: S3 goes through the same fsspec
    filesystem as the store (so AWS_ENDPOINT_URL and friends apply); local paths need none."""
    if not store_uri.startswith("s3://"):
        return None, uris
    from doodleflow.data.fsutil import filesystem
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, _ = filesystem(store_uri)
    return PyFileSystem(FSSpecHandler(fs)), [u.removeprefix("s3://") for u in uris]


def ray_run_config(store_uri: str, run_id: str, max_failures: int):
    """Ray Train's RunConfig for a run: its storage (run state, worker reports) lives beside the
    data, `<store>/ray_results`, so every node of a cluster reaches it and an s3:// store leaves
    nothing on local disk. The name is unique per launch (a relaunch after a crash is a new Ray
    run that resumes from the store's checkpoints)."""
    import uuid

    from ray.train import FailureConfig, RunConfig

    name = f"{run_id}-{uuid.uuid4().hex[:8]}"
    failures = FailureConfig(max_failures=max_failures)
    fs, uris = arrow_filesystem(store_uri, [f"{store_uri.rstrip('/')}/ray_results"])
    if fs is None:
        path = os.path.abspath(uris[0])
        os.makedirs(path, exist_ok=True)
        return RunConfig(name=name, storage_path=path, failure_config=failures)
    return RunConfig(name=name, storage_path=uris[0], storage_filesystem=fs, failure_config=failures)


def ordered_ingest():
    """Ray Train's dataset config with Ray Data's order kept (`preserve_order`): a shard's stream is then
    the same on every execution, which the exact resume replays (training/core/epochs.py). Without it,
    blocks reach a worker as their tasks finish; with it, Ray's splitter also drops its locality hints
    "to ensure determinism" and deals each block to the worker with the fewest rows (Ray 2.60
    `ray/data/_internal/execution/operators/output_splitter.py`, `OutputSplitter.start`). A copy of the
    driver's options, as Train's default ingest options are (`DataConfig.default_ingest_options`, which
    would warn here about a deprecated field it passes on), with the order kept."""
    import copy

    from ray.data import DataContext
    from ray.train import DataConfig

    options = copy.deepcopy(DataContext.get_current().execution_options)
    options.preserve_order = True
    return DataConfig(execution_options=options)


def shard_batches(shard, micro_batch: int, shuffle_buffer: int, shuffle_seed: int):
    """One pass over a worker's Ray Data shard: full micro-batches only (every worker takes the same
    number of steps), locally shuffled with `shuffle_seed`."""
    return shard.iter_batches(
        batch_size=micro_batch,
        batch_format="numpy",
        drop_last=True,
        local_shuffle_buffer_size=max(shuffle_buffer, micro_batch),
        local_shuffle_seed=shuffle_seed,
    )


def shard_epochs(shard, cfg, rank: int, convert, micro_batch: int, position=lambda: 0):
    """The epoch source (training/core/epochs.py) of a shard read once per epoch, each pass shuffled
    with a seed of (run seed, epoch, rank); a resumed run skips the `position()` micro-batches drawn."""
    from doodleflow.training.core.epochs import Epochs, passes

    def epoch_pass(epoch: int):
        return shard_batches(
            shard, micro_batch, cfg.data.shuffle_buffer, cfg.run.seed * 100_003 + epoch * 1_009 + rank
        )

    return Epochs(passes(epoch_pass), position, convert)
