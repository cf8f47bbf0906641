"""Session-wide test environment: all state under one temp DOODLEFLOW_HOME, offline settings, and a
real S3 endpoint (moto's server on loopback) for the tests that ask for it."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="doodleflow-test-")
os.environ["DOODLEFLOW_HOME"] = _HOME
os.environ["PREFECT_HOME"] = os.path.join(_HOME, "prefect")
os.environ.pop("DOODLEFLOW_STORE", None)
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("PREFECT_API_URL", None)
for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
    os.environ.pop(k, None)
# Ray Train's controller looks at its workers every 2 s, so a finished (or killed) worker group is
# noticed up to 2 s late; the suite runs ~30 tiny jobs and restarts, each of a few steps. Inherited by
# the CLI subprocesses and the Ray clusters they start.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")

import pytest  # noqa: E402
from doodleflow.flows import runtime  # noqa: E402,F401  (applies the remaining defaults)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(REPO, "test-artifacts")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API on 127.0.0.1 (moto server) with dummy credentials; yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, request):
    """A fresh bucket per test: s3://<name>."""
    from doodleflow.data.fsutil import filesystem

    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    fs, _ = filesystem(f"s3://{name}")
    fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def artifacts_dir():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def prefect_api():
    """One real Prefect API server (SQLite) for the session, shared with CLI subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def ray_local():
    """One small local Ray per pytest process, shared by every file that runs Ray in-process (Ray Train
    jobs, Prefect's Ray task runner): starting it is not what those tests check. Fractional-CPU workers
    keep 2 cores from deadlocking; the object store is capped for small /dev/shm."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20)
    yield
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """The slowest files first (their `slow(seconds=...)` mark, measured here), so that under
    `-n` (make test) the long end-to-end tests start at once and the short ones fill in around them:
    longest-processing-time-first scheduling. The sort is stable: files keep their order otherwise."""

    def cost(item) -> float:
        mark = item.get_closest_marker("slow")
        return float(mark.kwargs.get("seconds", 1)) if mark else 0.0

    items.sort(key=lambda item: -cost(item))
