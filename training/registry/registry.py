"""MLflow's model registry as doodleflow's artifact registry.

Weights stay in the project's store (local or S3); a registered version's `source` is their URI.
Each version gets its own MLflow run (or joins the training run) holding the params, metrics,
sample images and `lineage-<name>-<digest>.json` (one per version): every file's sha256, the dataset version and manifest hash,
the full config, the code version, the parent artifact and the Prefect flow run. Searchable facts
are also version tags. Loading by reference re-hashes the files: a modified artifact is refused.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from doodleflow.infra import settings
from doodleflow.infra.errors import ConfigError, NotFoundError, TamperedArtifact, TransientError
from doodleflow.training.registry.bases import base_digests, base_dirs, verify_bases
from doodleflow.training.registry.lineage import code_version, file_digests, verify_files
from doodleflow.training.registry.listing import list_sqlite, sqlite_path
from doodleflow.training.registry.refs import KINDS, ModelRef, parse_ref
from doodleflow.training.runs.seal import write_seal

log = logging.getLogger(__name__)


@dataclass
class Registered:
    name: str
    version: int
    kind: str
    uri: str
    run_id: str
    lineage: dict = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "uri": self.uri,
            "run_id": self.run_id,
            "aliases": self.aliases,
            **self.lineage,
        }


def default_tracking_uri(home: str | None = None) -> str:
    return settings.mlflow_tracking_uri(home)


def default_artifact_root(home: str, store: str | None = None) -> str:
    """Where MLflow keeps run artifacts (sample grids, loss curves, lineage JSON): beside the data
    when the store (`store`, else DOODLEFLOW_STORE) is on S3, else under DOODLEFLOW_HOME;
    DOODLEFLOW_MLFLOW_ARTIFACTS overrides both."""
    explicit = os.environ.get("DOODLEFLOW_MLFLOW_ARTIFACTS")
    store = store or os.environ.get("DOODLEFLOW_STORE", "")
    if explicit:
        return explicit
    if store.startswith("s3://"):
        return f"{store.rstrip('/')}/mlflow-artifacts"
    return os.path.join(home, "mlflow", "artifacts")


def ensure_experiment(client, name: str, location: str) -> str:
    """The experiment `name` whose artifacts go to `location`, created if needed. An experiment's
    location is fixed when it is made: one made for another artifact root (local vs S3) is left
    alone and a sibling named `name@<hash of location>` is used. Parallel jobs may race to create
    it: the loser reads the winner's."""
    import time

    from mlflow.exceptions import MlflowException

    for _ in range(5):
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.artifact_location.rstrip("/") != location.rstrip("/"):
            name = f"{name}@{hashlib.sha256(location.encode()).hexdigest()[:8]}"
            continue
        if exp is not None:
            return exp.experiment_id
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            time.sleep(0.5)
    raise TransientError(f"could not create the MLflow experiment {name} at {location}")


def _digest(files: list[dict]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


class Registry:
    def __init__(
        self,
        home: str | None = None,
        artifact_root: str | None = None,
        tracking_uri: str | None = None,
        store: str | None = None,
    ) -> None:
        home = home or settings.home()
        self.tracking_uri = tracking_uri or default_tracking_uri(home)
        self.artifact_root = artifact_root or default_artifact_root(home, store)

    @cached_property
    def client(self):
        """MLflow's client, made on first use: importing MLflow costs ~1.3 s that `list` does without."""
        from mlflow import MlflowClient

        for noisy in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..."
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if db := sqlite_path(self.tracking_uri):
            os.makedirs(os.path.dirname(db), exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- writing ---------------------------------------------------------------------------
    def experiment_id(self, kind: str) -> str:
        return ensure_experiment(
            self.client, f"doodleflow-{kind}", f"{self.artifact_root.rstrip('/')}/{kind}"
        )

    def start_run(self, kind: str, run_name: str, params: dict | None = None) -> str:
        run = self.client.create_run(self.experiment_id(kind), run_name=run_name)
        log_params(self.client, run.info.run_id, params or {})
        return run.info.run_id

    def register(
        self,
        name: str,
        kind: str,
        uri: str,
        *,
        config: dict,
        dataset: dict | None = None,
        parent: str | None = None,
        flow_run_id: str | None = None,
        metrics: dict | None = None,
        images: Sequence[str] = (),
        run_id: str | None = None,
        bases: list[str] | None = None,
    ) -> Registered:
        """Register the artifact at `uri` (a folder or file in the store) as a new version of `name`.

        `bases`: directories of the frozen weights loading it also reads (default: found from the
        artifact itself, training/registry/bases.py); their files' digests join the lineage."""
        if kind not in KINDS:
            raise ValueError(f"unknown artifact kind {kind!r}; one of {', '.join(KINDS)}")
        metrics = finite_metrics(name, metrics or {})
        files = file_digests(uri)
        base = base_digests(base_dirs(kind, uri) if bases is None else bases)
        lineage = {
            "kind": kind,
            "uri": uri,
            "files": files,
            "base": base,
            "dataset": dataset,
            "config": config,
            "parent": parent,
            "prefect_flow_run_id": flow_run_id,
            "metrics": metrics or {},
            **code_version(),
        }
        run_id = run_id or self.start_run(kind, f"register-{name}", config)
        for k, v in metrics.items():
            if v is not None:
                self.client.log_metric(run_id, k, float(v))
        # Named by its content: a second version registered from the same MLflow run (the training
        # run's) gets its own file instead of replacing the one an earlier version's digest covers.
        lineage_file = f"lineage-{name}-{_digest([lineage])[:16]}.json"
        self.client.log_dict(run_id, lineage, lineage_file)
        for img in images:
            self.client.log_artifact(run_id, img, "images")
        if not self._exists(name):
            self.client.create_registered_model(name, tags={"kind": kind})
        tags = {
            "kind": kind,
            "uri": uri,
            "files_sha256": _digest(files),
            "base_sha256": _digest(base),
            "git_commit": lineage["git_commit"],
            "git_dirty": str(lineage["git_dirty"]).lower(),
            "parent": parent or "",
            "prefect_flow_run_id": flow_run_id or "",
            "metrics": json.dumps(metrics or {})[:4000],
            "lineage_file": lineage_file,
        }
        if dataset:
            tags.update({f"dataset_{k}": str(v) for k, v in dataset.items()})
        mv = self.client.create_model_version(name, source=uri, run_id=run_id, tags=tags)
        write_seal(uri, name, int(mv.version))  # its files are never rewritten (training/runs/seal.py)
        return Registered(name, int(mv.version), kind, uri, run_id, lineage)

    def promote(self, name: str, version: int, alias: str) -> Registered:
        from mlflow.exceptions import MlflowException

        parse_ref(f"{name}@{alias}")  # the same name and alias rules as a reference
        try:
            self.client.get_model_version(name, str(version))
        except MlflowException as e:
            raise NotFoundError(f"no registered model version {name}:{version}: {e.message}") from e
        self.client.set_registered_model_alias(name, alias, str(version))
        return self.show(name, version)

    # -- reading ---------------------------------------------------------------------------
    def _exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
            return True
        except MlflowException:
            return False

    def _lineage(self, mv) -> dict:
        """The version's lineage JSON, read where its run keeps artifacts (a local folder or the S3
        store), not downloaded through MLflow (which draws a progress bar even for a local file)."""
        from doodleflow.data.fsutil import filesystem, join

        root = self.client.get_run(mv.run_id).info.artifact_uri
        name = mv.tags.get("lineage_file") or f"lineage-{mv.name}.json"  # versions made before the tag
        if root.startswith(("file://", "/", "s3://")):
            fs, path = filesystem(root)
            return json.loads(fs.cat_file(join(path, name)))
        from mlflow.artifacts import load_dict

        return load_dict(f"{root.rstrip('/')}/{name}")  # mlflow-artifacts:/, http(s)

    def _load(self, mv) -> Registered:
        lineage = self._lineage(mv)
        if _digest(lineage["files"]) != mv.tags.get("files_sha256") or (
            "base_sha256" in mv.tags and _digest(lineage.get("base", [])) != mv.tags["base_sha256"]
        ):
            raise TamperedArtifact(
                f"{mv.name}:{mv.version}: lineage file list does not match its registered digest"
            )
        return Registered(
            mv.name,
            int(mv.version),
            mv.tags.get("kind", ""),
            mv.source,
            mv.run_id,
            lineage,
            list(getattr(mv, "aliases", []) or []),
        )

    def show(self, name: str, version: int | None = None) -> Registered:
        return self.resolve(ModelRef(name, version=version), verify=False)

    def versions(self, name: str) -> list[Registered]:
        mvs = self.client.search_model_versions(f"name='{name}'")
        return [self._load(mv) for mv in sorted(mvs, key=lambda m: int(m.version))]

    def list(self, kind: str | None = None) -> builtins.list[dict]:
        if kind and kind not in KINDS:
            raise ConfigError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
        db = sqlite_path(self.tracking_uri)
        fast = list_sqlite(db, kind) if db else None
        return fast if fast is not None else self._list_mlflow(kind)

    def _list_mlflow(self, kind: str | None) -> builtins.list[dict]:
        out = []
        for rm in self.client.search_registered_models():
            if kind and rm.tags.get("kind") != kind:
                continue
            latest = max(
                (int(v.version) for v in self.client.search_model_versions(f"name='{rm.name}'")), default=0
            )
            out.append(
                {
                    "name": rm.name,
                    "kind": rm.tags.get("kind", ""),
                    "latest_version": latest,
                    "aliases": dict(getattr(rm, "aliases", {}) or {}),
                }
            )
        return sorted(out, key=lambda r: r["name"])

    def resolve(self, ref: str | ModelRef, verify: bool = True) -> Registered:
        """The registered version a reference names; with verify, its files are re-hashed first."""
        from mlflow.exceptions import MlflowException

        ref = parse_ref(ref) if isinstance(ref, str) else ref
        try:
            if ref.alias:
                mv = self.client.get_model_version_by_alias(ref.name, ref.alias)
            elif ref.version:
                mv = self.client.get_model_version(ref.name, str(ref.version))
            else:
                mvs = self.client.search_model_versions(f"name='{ref.name}'")
                if not mvs:
                    raise NotFoundError(f"no registered model {ref.name!r}")
                mv = max(mvs, key=lambda m: int(m.version))
        except MlflowException as e:
            raise NotFoundError(f"no registered model version {ref}: {e.message}") from e
        reg = self._load(mv)
        if verify:
            verify_files(reg.uri, reg.lineage["files"])
            verify_bases(reg.lineage.get("base", []))
        return reg


def finite_metrics(name: str, metrics: dict) -> dict:
    """The metrics with NaN or infinite values as None (JSON has no NaN), each one warned about: a
    diverged evaluation must not be registered silently."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, int | float) and not math.isfinite(v):
            log.warning(f"registering {name} with metric {k} = {v}: not a finite number, recorded as null")
            v = None
        out[k] = v
    return out


def log_params(client, run_id: str, params: dict) -> None:
    """A nested config as flat `section.key` parameters, in batches (MLflow caps one at 100)."""
    from mlflow.entities import Param

    flat = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
    for i in range(0, len(flat), 90):
        client.log_batch(run_id, params=flat[i : i + 90])


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
