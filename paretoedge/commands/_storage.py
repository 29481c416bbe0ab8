"""The ``--storage`` option shared by every command that opens a database.

An explicit ``--storage ''`` is an error (it used to fall back silently to
``sqlite:///paretoedge.db`` in the current directory); without the flag the URL comes from
``PARETOEDGE_STORAGE``, checked the same way. Commands that only read open the database
with ``create=False``: a misspelt SQLite path is then "does not exist", never a new file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paretoedge.storage import Storage

STORAGE_HELP = "Database URL (default: PARETOEDGE_STORAGE or sqlite:///paretoedge.db)."


def storage_url(flag: str | None) -> str:
    """The database URL of a command: ``--storage``, else the ``PARETOEDGE_STORAGE`` setting.

    Raises:
        ConfigError: The URL is empty or malformed (naming ``--storage`` or
            ``PARETOEDGE_STORAGE``).
    """
    from paretoedge.settings import get_settings
    from paretoedge.storage import check_url

    if flag is None:
        return check_url(get_settings().storage, field="PARETOEDGE_STORAGE")
    return check_url(flag, field="--storage")


def open_existing(flag: str | None) -> Storage:
    """Open the database of ``--storage`` for a command that must not create one.

    Raises:
        ConfigError: A malformed URL.
        StorageError: The SQLite file does not exist, the database holds no paretoedge
            tables, or it cannot be reached.
    """
    from paretoedge.storage import open_storage

    return open_storage(storage_url(flag), create=False)
