"""What both model families need from the Hugging Face libraries and the tiny presets, in one place:
quiet loading, and where a tiny preset's random weights are written."""

from __future__ import annotations

import os

from doodleflow.infra.settings import home


def quiet_hf() -> None:
    """Loading is logged by us; silence per-file progress bars and the deprecation notices."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def default_tiny_root() -> str:
    """Where a tiny preset is written when the source names no `tiny_root`: $DOODLEFLOW_HOME/models."""
    return os.path.join(home(), "models")


def tiny_root(root: str | None) -> str:
    """The absolute folder a tiny preset lives in (pinned by the driver, so every worker agrees)."""
    return os.path.abspath(root or default_tiny_root())
