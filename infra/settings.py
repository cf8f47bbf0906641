"""Process-wide settings: where state lives and which services to use. Light to import (stdlib only).

Embedded defaults put everything under DOODLEFLOW_HOME (default ./.doodleflow): the store, Prefect's
home and database, MLflow's database, caches. Values already in the environment win, so the same code
points at a Prefect server, a Ray cluster, MLflow or S3 by configuration alone.
"""

from __future__ import annotations

import os


def home() -> str:
    """Where local state lives: $DOODLEFLOW_HOME, default ./.doodleflow, as an absolute path."""
    return os.path.abspath(os.environ.get("DOODLEFLOW_HOME", ".doodleflow"))


def default_store() -> str:
    return os.environ.get("DOODLEFLOW_STORE") or os.path.join(home(), "store")


def resolve_store(store: str | None) -> str:
    """The store URI to use: the explicit one, else $DOODLEFLOW_STORE, else <home>/store.

    An s3:// URI is kept as is; a local path becomes absolute (workers may run elsewhere).
    """
    uri = (store or default_store()).rstrip("/") or "/"
    if uri.startswith("s3://"):
        return uri
    if "://" in uri and not uri.startswith("file://"):
        from doodleflow.infra.errors import ConfigError

        raise ConfigError(f"--store {uri!r}: unsupported URI; use a local path or s3://bucket/prefix")
    return os.path.abspath(uri.removeprefix("file://"))


# Training runs live in the store, so a run follows its store (--store, $DOODLEFLOW_STORE) with its
# datasets and models: every Ray worker and every later command (--resume, `registry register --run`,
# `generate --checkpoint`) finds it from the store URI its config carries. A separate runs location
# read from the environment would have to reach every worker of a cluster and every later command
# alike, or a run would be split or lost.
RUNS = "runs"


def runs_root(store: str) -> str:
    """Where `store`'s training runs live (URI or path, as `store` is given): `<store>/runs`."""
    return f"{store.rstrip('/')}/{RUNS}"


def run_rel(family: str, run_id: str) -> str:
    """A run's folder relative to the store's root: `runs/<family>/<run id>`."""
    return f"{RUNS}/{family}/{run_id}"


def ray_address(explicit: str | None = None) -> str | None:
    """A Ray cluster to join: the explicit address, else $RAY_ADDRESS; None starts a local one."""
    return explicit or os.environ.get("RAY_ADDRESS") or None


def mlflow_tracking_uri(home_dir: str | None = None) -> str:
    """MLflow's tracking store: $MLFLOW_TRACKING_URI, else a SQLite database under home (or `home_dir`)."""
    root = home_dir or home()
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{os.path.join(root, 'mlflow', 'mlflow.db')}"


def prefect_api_url() -> str | None:
    """A Prefect server to use; None means one API started for the command after its arguments are
    checked and shared with every process it starts (flows/prefect_api.py)."""
    return os.environ.get("PREFECT_API_URL") or None


def configure() -> None:
    """Apply the embedded defaults to the environment (values already set win)."""
    h = home()
    os.makedirs(h, exist_ok=True)
    defaults = {
        "PREFECT_HOME": os.path.join(h, "prefect"),
        # The first run on a fresh PREFECT_HOME migrates SQLite; 20 s is too tight on 2 cores.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_REQUEST_TIMEOUT": "120",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_DIR": os.path.join(h, "fiftyone", "db"),
        # FiftyOne warns that the bundled MongoDB 6.0 is its oldest supported version; it works.
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
