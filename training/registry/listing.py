"""`registry list` without importing MLflow (~1.3 s of imports): the registered models are read
straight from MLflow's SQLite schema (tables `registered_models`, `registered_model_tags`,
`model_versions`, `registered_model_aliases`, as created by mlflow/store/db_migrations). A schema this
code does not recognise returns None and the caller asks MLflow itself; tests compare both answers.
"""

from __future__ import annotations

import os
import sqlite3

# MLflow marks a deleted model version with this stage instead of removing its row.
_DELETED = "Deleted_Internal"

_MODELS = """
SELECT m.name, COALESCE(t.value, ''), COALESCE(MAX(v.version), 0)
FROM registered_models m
LEFT JOIN registered_model_tags t ON t.name = m.name AND t.key = 'kind'
LEFT JOIN model_versions v ON v.name = m.name AND COALESCE(v.current_stage, '') != ?
GROUP BY m.name, t.value
ORDER BY m.name
"""


def sqlite_path(tracking_uri: str) -> str | None:
    return tracking_uri[len("sqlite:///") :] if tracking_uri.startswith("sqlite:///") else None


def list_sqlite(db: str, kind: str | None = None) -> list[dict] | None:
    """Registered models as `Registry.list` returns them, or None if the schema is not MLflow's."""
    if not os.path.exists(db):
        return []  # nothing registered yet; MLflow would create the database, we need not
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            models = con.execute(_MODELS, (_DELETED,)).fetchall()
            aliases = con.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    by_name: dict[str, dict[str, int]] = {}
    for name, alias, version in aliases:
        by_name.setdefault(name, {})[alias] = int(version)
    return [
        {"name": name, "kind": k, "latest_version": int(latest), "aliases": by_name.get(name, {})}
        for name, k, latest in models
        if not kind or k == kind
    ]
