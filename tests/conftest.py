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
        "AWS_SEC07:14:09.457 | INFO    | Task run 'build-shard-c9d' - Finished in state Completed()
07:14:09.538 | INFO    | Flow run 'artichoke-koel' - shard 3/4 dba53800b20b: 382 samples built in 45.49s (8.4 samples/s build); run: 1411/1928 samples in 159.3s wall (8.9 samples/s wall)
07:14:22.343 | INFO    | Task run 'build-shard-cef' - Finished in state Completed()
07:14:22.529 | INFO    | Flow run 'artichoke-koel' - shard 4/4 ffbf2b203de3: 517 samples built in 61.76s (8.4 samples/s build); run: 1928/1928 samples in 172.3s wall (11.2 samples/s wall)
07:14:29.410 | INFO    | Task run 'commit-version-b55' - Finished in state Completed()
07:14:31.016 | INFO    | Flow run 'artichoke-koel' - dataset scale version 1: 1928 samples (1928 new) at /tmp/scale-refresh-jbcibct3/store/datasets/scale/versions/v000001
):
    """One real Prefect API server (SQLite) for the session, shared with CLI subprocesses."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)
