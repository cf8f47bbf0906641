"""Failpoints and delay points: named places where a test can make the process die as a crash would
(SIGKILL-like), or make a step slow enough to act while it runs.

`DOODLEFLOW_FAILPOINT=name` makes `failpoint("name")` end the process at once with exit code 137,
skipping every `finally` and atexit handler, so tests can prove that a crash at that exact point
leaves the store consistent. `DOODLEFLOW_DELAY=name:seconds` makes `delay("name")` sleep, so a test
can lose a node while work is still queued instead of racing a fast machine. Unset (the default),
each costs one dict lookup.
"""

import os
import time


def failpoint(name: str) -> None:
    if os.environ.get("DOODLEFLOW_FAILPOINT") == name:
        os._exit(137)


def delay(name: str) -> None:
    spec = os.environ.get("DOODLEFLOW_DELAY", "")
    point, _, seconds = spec.partition(":")
    if point == name and seconds:
        time.sleep(float(seconds))
