"""Looking at datasets in FiftyOne: media materialised from Parquet, grouped FiftyOne datasets.

Every path into FiftyOne goes through this package, so it first makes FiftyOne importable whatever
was imported before it (see `_preload_eta`).
"""

from __future__ import annotations

import sys


class _LenientMetadata:
    """A package's metadata where a missing field reads as None (the stdlib's 3.11 behaviour)."""

    def __init__(self, msg) -> None:
        self._msg = msg

    def __getitem__(self, key: str):
        return self._msg.get(key)

    def __getattr__(self, name: str):
        return getattr(self._msg, name)


def _preload_eta() -> None:
    """FiftyOne's dependency eta reads its package metadata with `metadata(...)["author"]`, and
    voxel51-eta's METADATA has no Author field. The stdlib answers None, but once the
    `importlib_metadata` backport is imported (mlflow does) it takes over metadata lookups and
    raises KeyError, so `import fiftyone` fails after any registry call in the same process.
    Import eta once with a lenient lookup; later imports reuse the loaded module."""
    if "eta" in sys.modules:
        return
    import importlib.metadata as md

    real = md.metadata
    md.metadata = lambda name: _LenientMetadata(real(name))  # type: ignore[assignment]  # restored below
    try:
        import eta  # noqa: F401
    except ImportError:  # fiftyone is not installed: ensure_database says so
        pass
    finally:
        md.metadata = real


_preload_eta()
