"""The model registry: every trained artifact registered in MLflow with its lineage, loaded by
reference (`NAME`, `NAME@alias`, `NAME:version`) with its files' sha256 verified.

`Registry` is loaded on first use: the CLI's parser imports `refs` (the kinds) and must stay light."""

from doodleflow.infra.errors import TamperedArtifact
from doodleflow.training.registry.refs import KINDS, ModelRef, parse_ref

__all__ = ["KINDS", "ModelRef", "Registry", "TamperedArtifact", "parse_ref"]


def __getattr__(name: str):
    if name == "Registry":
        from doodleflow.training.registry.registry import Registry

        return Registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
