"""Alembic, run programmatically from the migration scripts shipped in this package.

There is no ``alembic.ini``: the :class:`alembic.config.Config` is built in code with
``script_location`` pointing at ``paretoedge/storage/migrations`` as installed (read with
:mod:`importlib.resources`, so a wheel install works the same as the checkout), and the
connection is handed to ``migrations/env.py`` through ``Config.attributes``.

Our version table is ``pe_alembic_version``: Optuna's RDBStorage keeps its own Alembic
history in ``alembic_version`` in the same database.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from paretoedge.errors import StorageError
from paretoedge.storage._models import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

# Arbitrary constant identifying paretoedge's schema lock among PostgreSQL advisory locks.
ADVISORY_LOCK_KEY = 0x7065_5F6D_6967  # "pe_mig"


def script_location() -> str:
    """The directory of the migration scripts inside the installed package."""
    return str(files("paretoedge.storage").joinpath("migrations"))


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations; ``connection`` is used by ``env.py``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location().replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of paretoedge knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for a database without our tables)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` under a database-wide lock.

    The lock makes concurrent first opens safe: the second process waits, then finds the
    schema current and does nothing. On SQLite the lock is the write lock taken by
    ``BEGIN IMMEDIATE`` (see :mod:`paretoedge.storage._engine`); on PostgreSQL a
    transaction-scoped advisory lock, and DDL is transactional, so a failed migration
    leaves nothing half done.

    Raises:
        StorageError: The database is at a revision this paretoedge does not know
            (written by a newer version), or a migration failed.
    """
    from alembic import command
    from alembic.util.exc import CommandError
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from paretoedge.storage._engine import _masked, describe_error

    url = _masked(engine.url)
    try:
        with engine.connect() as conn, conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            command.upgrade(alembic_config(conn), revision)
    except CommandError as exc:
        raise StorageError(
            f"cannot upgrade the schema of {url} to {revision!r}: {exc} "
            f"(this paretoedge knows revisions up to {head_revision()!r}; a newer "
            "paretoedge may have written this database)"
        ) from exc
    except SQLAlchemyError as exc:
        raise StorageError(describe_error(exc, url)) from exc
