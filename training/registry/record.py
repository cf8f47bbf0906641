"""One artifact to register, described once and handed whole from a flow to the registration task."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ArtifactRecord:
    """What registering `uri` as a new version of `name` records besides its files' digests.

    `trained` = (family, run id) of the training run: its live MLflow run gets the version; a run
    trained without tracking gets a new MLflow run with `curve` (its metrics.jsonl) replayed."""

    name: str
    kind: str
    uri: str
    config: dict
    dataset: dict | None = None  # the dataset version's lineage (name, version, manifest hash, store)
    parent: str | None = None  # the registered version it was trained from (NAME:version)
    metrics: dict = field(default_factory=dict)
    images: list[str] = field(default_factory=list)  # local files attached to the version
    curve: list[dict] | None = None
    trained: tuple[str, str] | None = None
