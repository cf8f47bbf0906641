"""Publishing a locally built directory (a model preset, a downloaded copy) all at once.

Built into a temp sibling and renamed into place, so a killed build never leaves a half-written
directory that a later run would take as complete; a concurrent builder that loses the race simply
discards its copy.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable


def build_atomically(build: Callable[[str], None], final: str, marker: str) -> str:
    """`build(tmp)` then rename to `final`, unless `final/marker` exists already. Returns `final`."""
    if os.path.exists(os.path.join(final, marker)):
        return final
    os.makedirs(os.path.dirname(final) or ".", exist_ok=True)
    tmp = f"{final}.tmp-{uuid.uuid4().hex}"
    try:
        build(tmp)
        os.rename(tmp, final)
    except OSError:
        if not os.path.exists(os.path.join(final, marker)):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
