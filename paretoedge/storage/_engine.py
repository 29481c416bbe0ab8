"""Opening a database: engine setup, the session context manager, error wrapping.

Every database access of paretoedge goes through :class:`Storage`: ``Storage.session()``
commits on success, rolls back on any exception and turns driver errors into
:class:`~paretoedge.errors.StorageError`; ``Storage.run()`` does the same for a function
of a session and retries it when the database reports a transient conflict (SQLite busy,
PostgreSQL serialization failure or deadlock).

SQLite is set up so that several local processes can share one file: WAL journal (readers
never block the writer), a busy timeout, foreign keys on, and write transactions opened
with ``BEGIN IMMEDIATE``. The last point matters: with the default deferred BEGIN, a
transaction that reads and then writes can fail at once with "database is locked" when
another process committed in between, because SQLite cannot upgrade its read snapshot;
taking the write lock up front makes the busy timeout apply instead.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from paretoedge.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.orm import Session, sessionmaker

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a SQLite connection waits for another process's write lock.
DEFAULT_BUSY_TIMEOUT_S = 30.0
#: Seconds to wait for a PostgreSQL server to accept a connection.
DEFAULT_CONNECT_TIMEOUT_S = 10
#: How often :meth:`Storage.run` retries a transaction after a transient conflict.
DEFAULT_RETRIES = 8

_READONLY = "paretoedge_readonly"
_URL_HELP = "sqlite:///PATH or postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
# PostgreSQL SQLSTATEs after which the whole transaction can simply be run again.
_PG_RETRYABLE = {"40001", "40P01"}


def _masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(url: str) -> URL:
    """Parse and normalise a storage URL; ``postgresql://`` means psycopg 3.

    Raises:
        StorageError: The URL is malformed or names a database other than SQLite or
            PostgreSQL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"invalid database URL {url!r}: expected {_URL_HELP}")
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise StorageError(f"invalid database URL {url!r}: expected {_URL_HELP}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise StorageError(
                f"unsupported driver {parsed.drivername!r} in {_masked(parsed)}: "
                "use postgresql+psycopg://"
            )
        if not parsed.database:
            raise StorageError(f"invalid database URL {_masked(parsed)}: no database name")
    elif backend == "sqlite":
        if parsed.drivername != "sqlite":
            raise StorageError(
                f"unsupported driver {parsed.drivername!r} in {_masked(parsed)}: use sqlite:///"
            )
    else:
        raise StorageError(
            f"unsupported database {backend!r} in {_masked(parsed)}: allowed sqlite, postgresql"
        )
    return parsed


def check_url(url: object, *, field: str = "--storage") -> str:
    """``url`` if it is a storage URL :func:`parse_url` accepts (an empty string is not).

    For flags and settings, checked before anything is opened: the error names ``field``.

    Raises:
        ConfigError: Naming ``field`` and the URL forms (a password in the URL is hidden).
    """
    if not isinstance(url, str):
        raise ConfigError(field, url, _URL_HELP)
    try:
        parse_url(url)
    except StorageError as exc:
        shown = url if "@" not in url else "<a URL with credentials>"
        raise ConfigError(field, shown, _URL_HELP) from exc
    return url


def is_transient(exc: BaseException) -> bool:
    """Whether running the same transaction again may succeed (lock or serialization)."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _PG_RETRYABLE:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message


def describe_error(exc: BaseException, url: str) -> str:
    """One line a person can act on, for a driver error raised while using ``url``."""
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0] if detail else type(exc).__name__
    if isinstance(exc, IntegrityError):
        return f"database integrity error on {url}: {first}"
    if isinstance(exc, OperationalError):
        if "locked" in first.lower():
            return f"database {url} stayed locked by another process: {first}"
        return f"cannot use database {url}: {first}"
    if isinstance(exc, DBAPIError):
        return f"database error on {url}: {first}"
    return f"database error on {url}: {type(exc).__name__}: {first}"


class Storage:
    """An open paretoedge database (thread-safe; one per process and URL is enough).

    Create it with :func:`open_storage`. The data-access functions of
    :mod:`paretoedge.storage` take it as their first argument. ``close()`` (or using it
    as a context manager) releases the connection pool.

    Attributes:
        url: The URL with the password masked (safe to print).
        dialect: ``"sqlite"`` or ``"postgresql"``.
        engine: The SQLAlchemy engine (for benchmarks and migrations; prefer the
            data-access functions).
    """

    def __init__(self, engine: Engine, *, retries: int = DEFAULT_RETRIES) -> None:
        from sqlalchemy.orm import sessionmaker

        self.engine = engine
        self.url = _masked(engine.url)
        self.dialect: Literal["sqlite", "postgresql"] = (
            "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
        )
        self.retries = retries
        self._factory: sessionmaker[Session] = sessionmaker(
            bind=engine, expire_on_commit=False, autoflush=False
        )
        self._readonly_factory: sessionmaker[Session] = sessionmaker(
            bind=engine.execution_options(**{_READONLY: True}),
            expire_on_commit=False,
            autoflush=False,
        )
        # Reads that are a single statement need no transaction block on PostgreSQL (a
        # statement sees one snapshot by itself); this saves the BEGIN/ROLLBACK round
        # trips. SQLite keeps its deferred read transaction (local, no round trips).
        self._autocommit_factory = self._readonly_factory
        if self.dialect == "postgresql":
            self._autocommit_factory = sessionmaker(
                bind=engine.execution_options(isolation_level="AUTOCOMMIT", **{_READONLY: True}),
                expire_on_commit=False,
                autoflush=False,
            )

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (the object must not be used afterwards)."""
        self.engine.dispose()

    @contextmanager
    def _transaction(self, readonly: bool, snapshot: bool = True) -> Iterator[Session]:
        if not readonly:
            session = self._factory()
        elif snapshot:
            session = self._readonly_factory()
        else:
            session = self._autocommit_factory()
        try:
            yield session
            if readonly:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        Args:
            readonly: Nothing will be written; on SQLite the transaction then does not
                take the write lock, so readers never wait for writers.

        Raises:
            StorageError: Any error of the database or its driver (the original is
                chained as ``__cause__``). Other exceptions pass through unchanged
                after the rollback.
        """
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._transaction(readonly) as session:
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(describe_error(exc, self.url)) from exc

    def run(
        self, fn: Callable[[Session], T], *, readonly: bool = False, snapshot: bool = True
    ) -> T:
        """Run ``fn(session)`` in one transaction, retrying it on transient conflicts.

        ``fn`` may run more than once, so it must do nothing outside the database that
        cannot be repeated (every data-access function of paretoedge is idempotent).
        Retries back off exponentially with jitter. A pooled connection that turns out
        to be dead (server restarted) is replaced and ``fn`` run once more, instead of
        pinging the server before every use.

        Args:
            readonly: ``fn`` writes nothing (see :meth:`session`).
            snapshot: With ``readonly``: ``False`` when ``fn`` reads with a single
                statement or does not need its statements to share one snapshot; on
                PostgreSQL it then runs without BEGIN/ROLLBACK round trips.

        Raises:
            StorageError: As :meth:`session`, after the retries are spent.
        """
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        attempt = 0
        reconnected = False
        while True:
            try:
                with self._transaction(readonly, snapshot) as session:
                    return fn(session)
            except SQLAlchemyError as exc:
                if isinstance(exc, DBAPIError) and exc.connection_invalidated and not reconnected:
                    _log.info("database connection was lost (%s); reconnecting", exc)
                    reconnected = True
                    continue
                if attempt < self.retries and is_transient(exc):
                    delay = min(2.0, 0.02 * 2**attempt) * (0.5 + random.random())
                    _log.debug("transient database conflict (%s); retry in %.3fs", exc, delay)
                    attempt += 1
                    time.sleep(delay)
                    continue
                raise StorageError(describe_error(exc, self.url)) from exc


def _enable_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Put the database file in WAL mode (persistent: a file already in WAL is left alone).

    Switching the journal mode needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, when another process holds the file (two
    workers opening a new study database together), so the switch is retried here for up to
    the busy timeout.
    """
    import sqlite3

    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout_s
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _sqlite_listeners(engine: Engine, *, busy_timeout_s: float, memory: bool) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from the sqlite3 module (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                _enable_wal(cursor, busy_timeout_s)
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def create_engine_for(
    url: str | URL,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
) -> Engine:
    """A configured engine for ``url`` (no connection is made yet).

    Raises:
        StorageError: Malformed or unsupported URL, or a SQLite file in a directory that
            does not exist.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if not memory:
            assert parsed.database is not None
            parent = Path(parsed.database).expanduser().absolute().parent
            if not parent.is_dir():
                raise StorageError(
                    f"cannot open {_masked(parsed)}: directory {parent} does not exist"
                )
        kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout_s}}
        if memory:
            # One connection shared by all sessions, or every session sees a new database.
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
        engine = create_engine(parsed, **kwargs)
        _sqlite_listeners(engine, busy_timeout_s=busy_timeout_s, memory=memory)
        return engine
    return create_engine(parsed, connect_args={"connect_timeout": connect_timeout_s})


def _require_sqlite_file(parsed: URL) -> None:
    """Refuse a SQLite URL whose file does not exist (SQLite would create it on connect)."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    assert parsed.database is not None
    path = Path(parsed.database).expanduser()
    try:
        exists = path.is_file()
    except OSError:
        exists = False
    if not exists:
        raise StorageError(
            f"database file {path} does not exist ({_masked(parsed)}): check --storage "
            "or PARETOEDGE_STORAGE"
        )


def open_storage(
    url: str,
    *,
    upgrade: bool = True,
    create: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
) -> Storage:
    """Connect to ``url``, bring its schema to the newest revision, return the storage.

    Safe to call from several processes at once on a fresh database: the Alembic upgrade
    runs under a database-wide lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
    PostgreSQL), so exactly one process creates the tables.

    Args:
        url: ``sqlite:///path/to/file.db`` (created if missing; its directory must
            exist), ``sqlite://`` (in memory, one process), or
            ``postgresql+psycopg://user[:password]@host[:port]/database`` (the database
            must exist; ``postgresql://`` is taken to mean psycopg 3).
        upgrade: Run the Alembic migrations to head (otherwise the schema must already be
            current, e.g. a read-only replica).
        create: Whether a missing database may be created: a new SQLite file, or the
            paretoedge tables in a database without them. Commands that only read pass
            ``False``, so that a misspelt URL is an error instead of a new empty database.
        busy_timeout_s: SQLite: how long to wait for another process's write lock.
        connect_timeout_s: PostgreSQL: how long to wait for the server.
        retries: Transient-conflict retries of :meth:`Storage.run`.

    Raises:
        StorageError: Bad URL, unreachable or refusing server, unwritable file, or a
            schema newer than this version of paretoedge knows.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from paretoedge.storage._migrate import current_revision, upgrade_schema

    parsed = parse_url(url)
    if not create:
        _require_sqlite_file(parsed)
    engine = create_engine_for(
        parsed, busy_timeout_s=busy_timeout_s, connect_timeout_s=connect_timeout_s
    )
    masked = _masked(engine.url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if not create and current_revision(engine) is None:
            raise StorageError(
                f"{masked} is not a paretoedge database (it has no paretoedge tables): "
                "check --storage or PARETOEDGE_STORAGE"
            )
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot connect to {masked}: {_first_line(exc)}") from exc
    except StorageError:
        engine.dispose()
        raise
    try:
        if upgrade:
            upgrade_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return Storage(engine, retries=retries)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
