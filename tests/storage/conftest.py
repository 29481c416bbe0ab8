"""Fixtures of the storage suite: every test that takes ``db_url`` or ``storage`` runs once
on a SQLite file and once on a fresh database of the real PostgreSQL server (marked
``postgres``; the server is 127.0.0.1:5432, user postgres, trust authentication).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _storage_helpers import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True
        )
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({exc}); start it "
            "(.ci/run does) or deselect these tests with -m 'not postgres'"
        )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped (with its connections) afterwards."""
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _shared_pg_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole session (creating one is slow)."""
    from paretoedge.storage import open_storage

    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        open_storage(url).close()
        yield url
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'pe\\_%' AND tablename <> 'pe_alembic_version'"
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database of the parametrized backend at schema head, without rows.

    SQLite: a new file. PostgreSQL: the session's database with every pe_ table emptied
    (tests that need a database without even the schema use ``pg_url``).
    """
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'pe.db'}"
    url = str(request.getfixturevalue("_shared_pg_url"))
    _truncate(url)
    return url


@pytest.fixture
def storage(db_url: str) -> Iterator[Any]:
    from paretoedge.storage import open_storage

    with open_storage(db_url) as opened:
        yield opened
