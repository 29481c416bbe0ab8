"""Opening without creating: read-only commands never make a database, URLs are checked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from paretoedge.errors import ConfigError, StorageError
from paretoedge.storage import check_url, list_studies, open_storage


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return [r[0] for r in rows]


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "paretoedgee.db"
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{path}", create=False)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_database_without_our_tables_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    conn.close()
    with pytest.raises(StorageError, match="not a paretoedge database"):
        open_storage(f"sqlite:///{path}", create=False)
    assert _tables(path) == ["notes"]
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StorageError, match="not a paretoedge database"):
        open_storage(f"sqlite:///{empty}", create=False)
    assert _tables(empty) == []


def test_an_existing_database_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pe.db'}"
    open_storage(url).close()
    with open_storage(url, create=False) as st:
        assert list(list_studies(st)) == []


@pytest.mark.postgres
def test_an_empty_postgres_database_gets_no_tables(pg_url: str) -> None:
    import psycopg

    with pytest.raises(StorageError, match="not a paretoedge database"):
        open_storage(pg_url, create=False)
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        n = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert n is not None and n[0] == 0


@pytest.mark.parametrize(
    "url",
    ["", "   ", "paretoedge.db", "mysql://u@h/db", "sqlite+pysqlite2:///x.db", "postgresql://h"],
)
def test_bad_urls_name_the_flag(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_url(url, field="--storage")
    assert info.value.field == "--storage" and "sqlite:///PATH" in str(info.value)


def test_credentials_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        check_url("mysql://user:secret@host/db")
    assert "secret" not in str(info.value)
