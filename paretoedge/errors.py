"""The exception hierarchy of paretoedge.

Every error a user can cause (bad configuration, unknown device, a model TVM cannot
import, a database that cannot be reached) is a :class:`ParetoEdgeError`. The CLI turns
these into one line on stderr and exit code 2, and the HTTP API into a 4xx response with
the same message. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Longest rendering of a field name or a value in an error message; longer ones are cut
#: (a 200,000-character override must not come back as a 200,000-character line).
MAX_SHOWN = 80
#: Longest rendering of the allowed values.
MAX_ALLOWED_SHOWN = 300


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` on one line, cut to ``limit`` characters (marked with ``...``)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


class ParetoEdgeError(Exception):
    """Base class of all errors caused by input or environment, not by a bug."""


class ConfigError(ParetoEdgeError, ValueError):
    """A configuration value is invalid.

    The message is one line; the field and the value are cut to :data:`MAX_SHOWN`
    characters in it (the attributes keep them whole).

    Args:
        field: Dotted name of the offending field (``quant.bits``, ``devices[1]``).
        value: The value that was given.
        allowed: Human-readable description of what is allowed, or an iterable of the
            allowed values (rendered as a comma-separated list).
    """

    def __init__(self, field: str, value: Any, allowed: str | Iterable[Any]) -> None:
        if not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = shorten(repr(value))
        super().__init__(
            f"invalid {shorten(field)}={shown}: allowed {shorten(allowed, MAX_ALLOWED_SHOWN)}"
        )


class UnknownNameError(ConfigError):
    """A name (device, transform, objective, model alias, ...) is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        super().__init__(kind, name, sorted(known))


class DeviceError(ParetoEdgeError):
    """A device profile is missing or malformed."""


class LoweringError(ParetoEdgeError):
    """A model could not be imported into or built by TVM."""


class DataError(ParetoEdgeError):
    """A dataset file is missing or malformed."""


class StorageError(ParetoEdgeError):
    """The database could not be reached or a stored record is inconsistent."""


class NotFoundError(ParetoEdgeError):
    """A study, trial or artifact asked for does not exist."""


class MissingExtraError(ParetoEdgeError):
    """An optional dependency is not installed.

    Args:
        package: The import name that failed.
        extra: The ``pip install paretoedge[extra]`` that provides it.
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed: install it with pip install 'paretoedge[{extra}]'"
        )
