"""Alembic environment of paretoedge's own tables (run by ``_migrate``, never by a CLI).

The connection comes from ``config.attributes["connection"]``, already inside the
transaction that holds the schema lock, so this script neither creates an engine nor
commits. Only ``pe_*`` tables are ours; Optuna's tables share the database.
"""

from __future__ import annotations

from alembic import context

from paretoedge.storage._models import VERSION_TABLE, Base


def _include_name(name: str | None, type_: str, _parent: object) -> bool:
    if type_ == "table":
        return bool(name) and str(name).startswith("pe_") and name != VERSION_TABLE
    return True


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "paretoedge migrations run through paretoedge.storage.upgrade_schema(), "
            "which passes the connection in Config.attributes"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
