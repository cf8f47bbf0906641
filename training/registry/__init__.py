"""The model registry: every trained artifact registered in MLflow with its lineage, loaded by
reference (`NAME`, `NAME@alias`, `NAME:version`) with its files' sha256 verified."""

from doodleflow.training.registry.refs import ModelRef, parse_ref
from doodleflow.training.registry.registry import Registry, TamperedArtifact

__all__ = ["ModelRef", "Registry", "TamperedArtifact", "parse_ref"]
