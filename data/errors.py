"""The curation library raises the project's errors (doodleflow.infra.errors); re-exported for its callers."""

from doodleflow.infra.errors import ConfigError, InputError

__all__ = ["ConfigError", "InputError"]
