"""DOODLEFLOW_HOME as the training library sees it (flows/runtime.py holds the same rule for the
flows; the library does not import the flows)."""

from __future__ import annotations

import os


def home() -> str:
    """Where local state lives: $DOODLEFLOW_HOME, default ./.doodleflow, as an absolute path."""
    return os.path.abspath(os.environ.get("DOODLEFLOW_HOME", ".doodleflow"))
