"""Error types shared by the curation steps."""


class InputError(ValueError):
    """A structural problem with the input (missing file or column, unreadable CSV).

    Raised before any work starts; the message names the file and, where it applies, the column.
    """


class ConfigError(RuntimeError):
    """The environment cannot do what was asked (a service missing or unreachable); says how to fix it."""
