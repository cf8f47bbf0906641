"""A TwoNodeCluster whose start fails stops what it started: no `ray start` outlives a failed fixture
(one once ran 45 minutes after its set-up timed out)."""

from __future__ import annotations

import os

import pytest

from tests.scale.ray_cluster import TwoNodeCluster


def test_a_failed_start_raises_and_leaves_no_node():
    c = TwoNodeCluster()
    os.rmdir(c.temp)
    open(c.temp, "w").close()  # a file where the head's temp dir goes: the head exits at start-up
    try:
        with pytest.raises(AssertionError, match="ray start --head exited"):
            c.start()
        assert c.head is not None and c.head.returncode is not None and c.worker is None
        with pytest.raises(ProcessLookupError):  # nothing is left in the head's process group
            os.killpg(c.head.pid, 0)
    finally:
        c.stop()
        os.remove(c.temp)
