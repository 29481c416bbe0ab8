"""Driver errors become StorageError; sessions commit and roll back; SQLite lock handling."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from _storage_helpers import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER, study_kwargs

from paretoedge.errors import ParetoEdgeError, StorageError
from paretoedge.storage import (
    Storage,
    create_study,
    get_study,
    list_studies,
    open_storage,
    optuna_storage,
    parse_url,
)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("", "invalid database URL"),
        ("not a url", "invalid database URL"),
        ("mysql+pymysql://u@h/db", "unsupported database 'mysql'"),
        ("sqlite+pysqlcipher:///x.db", "unsupported driver"),
        ("postgresql+asyncpg://u@h/db", "unsupported driver"),
        ("postgresql+psycopg://u@h", "no database name"),
    ],
    ids=["empty", "garbage", "mysql", "sqlcipher", "asyncpg", "no-db"],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match):
        open_storage(url)


def test_plain_postgresql_url_means_psycopg3() -> None:
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


def test_sqlite_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


def test_sqlite_unreadable_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a sqlite database" * 200)
    with pytest.raises(StorageError, match=r"cannot connect to sqlite:///.*bogus\.db"):
        open_storage(f"sqlite:///{bogus}")


def test_unreachable_server_masks_password() -> None:
    url = "postgresql+psycopg://someone:s3cret@127.0.0.1:1/nothing"
    with pytest.raises(StorageError) as err:
        open_storage(url, connect_timeout_s=2)
    message = str(err.value)
    assert message.startswith("cannot connect to postgresql+psycopg://someone:***@127.0.0.1:1")
    assert "s3cret" not in message
    assert isinstance(err.value, ParetoEdgeError)


@pytest.mark.postgres
def test_missing_postgres_database() -> None:
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/pe_does_not_exist"
    with pytest.raises(StorageError, match='database "pe_does_not_exist" does not exist'):
        open_storage(url)


def test_optuna_needs_a_shared_database() -> None:
    with pytest.raises(StorageError, match="in-memory"):
        optuna_storage("sqlite://")


def test_session_commits_rolls_back_and_wraps(storage: Storage) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    create_study(storage, **study_kwargs())
    with storage.session() as session:
        session.execute(text("UPDATE pe_studies SET seed = 99"))
    assert get_study(storage, name="s1").seed == 99

    with pytest.raises(ValueError, match="boom"), storage.session() as session:
        session.execute(text("UPDATE pe_studies SET seed = 100"))
        raise ValueError("boom")
    assert get_study(storage, name="s1").seed == 99

    with pytest.raises(StorageError, match="pe_no_such_table") as err:
        with storage.session() as session:
            session.execute(text("UPDATE pe_studies SET seed = 101"))
            session.execute(text("SELECT * FROM pe_no_such_table"))
    assert isinstance(err.value.__cause__, SQLAlchemyError)
    assert get_study(storage, name="s1").seed == 99

    with pytest.raises(StorageError, match="integrity"), storage.session() as session:
        session.execute(text("UPDATE pe_studies SET status = 'bogus'"))
    assert get_study(storage, name="s1").status == "running"


def test_run_retries_transient_conflicts_only(storage: Storage) -> None:
    from sqlalchemy.exc import OperationalError

    calls = []

    def flaky(_session: object) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    assert storage.run(flaky) == "done" and len(calls) == 3

    calls.clear()

    def broken(_session: object) -> None:
        calls.append(1)
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such column: zz"))

    with pytest.raises(StorageError, match="no such column"):
        storage.run(broken)
    assert len(calls) == 1


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()


def test_sqlite_writer_waits_for_another_processes_lock(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    with open_storage(f"sqlite:///{path}") as storage:
        locked = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 1.0, locked))
        holder.start()
        locked.wait()
        start = time.perf_counter()
        create_study(storage, **study_kwargs())
        waited = time.perf_counter() - start
        holder.join()
        assert waited >= 0.5, "the write should have waited for the lock"
        assert [s.study.name for s in list_studies(storage)] == ["s1"]
        # Readers are not blocked by a writer (WAL).
        locked.clear()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 1.0, locked))
        holder.start()
        locked.wait()
        start = time.perf_counter()
        assert get_study(storage, name="s1").name == "s1"
        assert time.perf_counter() - start < 0.5
        holder.join()


def test_sqlite_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    open_storage(f"sqlite:///{path}").close()
    with open_storage(f"sqlite:///{path}", busy_timeout_s=0.2, retries=1) as storage:
        locked = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 2.0, locked))
        holder.start()
        locked.wait()
        try:
            with pytest.raises(StorageError, match="locked by another process"):
                create_study(storage, **study_kwargs())
        finally:
            holder.join()
        assert list_studies(storage) == ()


@pytest.mark.postgres
def test_lost_connection_is_replaced(pg_url: str) -> None:
    """A pooled connection killed by the server (restart, idle timeout) is replaced."""
    import psycopg
    from sqlalchemy import text

    storage = open_storage(pg_url)
    create_study(storage, **study_kwargs())
    with storage.session() as session:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_ADMIN_DB}"
    with psycopg.connect(admin, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    try:
        assert get_study(storage, name="s1").name == "s1"
    finally:
        storage.close()
