"""A real two-node Ray cluster on this machine (loopback), with Ray 2.60's token authentication."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoNodeCluster:
    """`ray start --head` plus a second `ray start --address` node, both on 127.0.0.1.

    The second node runs with --block in its own process group, so killing that group takes the node
    down the way a lost machine would (raylet, object store and its workers all at once).
    """

    def __init__(self, cpus_per_node: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(
            prefix="ray", dir="/tmp"
        )  # short: Ray's socket paths have a length limit
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            **(env or {}),  # the nodes' workers inherit it
        }
        self.cpus = cpus_per_node
        self.head: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None

    def _common(self) -> list[str]:
        return [
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            "--object-store-memory=150000000",
            "--disable-usage-stats",
        ]

    def start(self) -> TwoNodeCluster:
        """Both nodes, up; a start that fails (a node exits, a wait times out) stops what it started
        before raising, so no `ray start` outlives a failed fixture."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> TwoNodeCluster:
        # Both nodes run with --block in process groups of their own, so stopping the cluster kills
        # exactly its processes (`ray stop` would also kill any other Ray on the machine, such as the
        # one a test process started with ray.init()).
        self.head = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                "--block",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp}",
                *self._common(),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_port(timeout=300)  # the head's GCS listens: a node can join it
        self.worker = subprocess.Popen(
            [
                RAY,
                "start",
                f"--address={self.address}",
                "--block",
                '--resources={"second_node": 1}',
                *self._common(),
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_nodes(2)
        return self

    def _wait_port(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.head.poll() is None, "ray start --head exited"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"Ray head at {self.address} did not listen within {timeout} s")

    def wait_nodes(self, n: int, timeout: float = 420) -> None:
        """Until n nodes are alive: one driver that connects once and polls the GCS (a driver per
        poll would import Ray and make the nodes start workers for it each time). The bound is for a
        loaded machine: at load ~5 on 2 cores, two nodes took over 180 s to register."""
        code = (
            "import sys, time, ray\n"
            f"ray.init(address='{self.address}', logging_level='ERROR')\n"
            f"while sum(x['Alive'] for x in ray.nodes()) < {n}:\n"
            "    time.sleep(0.25)\n"
        )
        deadline = time.time() + timeout
        while True:  # a connection can still fail while the head finishes starting: try again
            left = deadline - time.time()
            try:
                out = subprocess.run(
                    [sys.executable, "-c", code], env=self.env, capture_output=True, timeout=max(left, 1)
                )
            except subprocess.TimeoutExpired:
                out = None
            if out is not None and out.returncode == 0:
                return
            if time.time() >= deadline:
                raise TimeoutError(f"Ray cluster at {self.address} did not reach {n} nodes")
            time.sleep(0.5)

    def kill_second_node(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def stop(self) -> None:
        """Kill both nodes' process groups (raylet, GCS, object store, workers) and remove the temp dir."""
        for p in (self.worker, self.head):
            if p is None:
                continue
            # Its group can outlive a `ray start` that exited (raylet, GCS): kill the group in any case
            # (Linux does not reuse a pid while it names a live process group).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        shutil.rmtree(self.temp, ignore_errors=True)
