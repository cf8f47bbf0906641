"""Process-wide settings for embedded defaults; imported before Prefect, Ray or albumentations.

Everything lives under DOODLEFLOW_HOME (default ./.doodleflow): the store, Prefect's home and
database, caches. Values already in the environment win, so the same code points at a Prefect
server, a Ray cluster or S3 by configuration alone.
"""

from __future__ import annotations

import os


def home() -> str:
    return os.path.abspath(os.environ.get("DOODLEFLOW_HOME", ".doodleflow"))


def default_store() -> str:
    return os.environ.get("DOODLEFLOW_STORE") or os.path.join(home(), "store")


def configure() -> None:
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


configure()
