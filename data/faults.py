"""Failpoints: named places where a test can make the process die as a crash would (SIGKILL-like).

`DOODLEFLOW_FAILPOINT=name` makes `failpoint("name")` end the process at once with exit code 137,
skipping every `finally` and atexit handler, so tests can prove that a crash at that exact point
leaves the store consistent. Unset (the default), it costs one dict lookup.
"""

import os


def failpoint(name: str) -> None:
    if os.environ.get("DOODLEFLOW_FAILPOINT") == name:
        os._exit(137)
