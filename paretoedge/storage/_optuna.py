"""Optuna's RDBStorage in the same database as paretoedge's tables.

Optuna creates and migrates its own tables (``studies``, ``trials``, ...; history in
``alembic_version``); ours are ``pe_*`` with history in ``pe_alembic_version``, so the two
never collide and Optuna's dashboard can open a study as is.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import StorageError
from paretoedge.storage._engine import (
    DEFAULT_BUSY_TIMEOUT_S,
    DEFAULT_CONNECT_TIMEOUT_S,
    _masked,
    _sqlite_listeners,
    describe_error,
    open_storage,
    parse_url,
)

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import URL, Engine

_OPTUNA_INIT_LOCK_KEY = 0x7065_5F6F_7074  # "pe_opt"


@contextlib.contextmanager
def _init_lock(url: URL, engine: Engine) -> Iterator[None]:
    """Serialise Optuna's table creation across processes (it is not race-free itself)."""
    from sqlalchemy import text

    if url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _OPTUNA_INIT_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _OPTUNA_INIT_LOCK_KEY})
                conn.commit()
        return
    if url.database in (None, "", ":memory:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: no advisory file locks; the busy timeout has to do.
        yield
        return
    lock_path = Path(str(url.database)).expanduser().absolute().with_suffix(".optuna-init.lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def optuna_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    heartbeat_stale_trial_callback: (
        Callable[[optuna.study.Study, optuna.trial.FrozenTrial], None] | None
    ) = None,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
) -> optuna.storages.RDBStorage:
    """An Optuna ``RDBStorage`` on ``url``, set up like :func:`open_storage`.

    paretoedge's own schema is created/upgraded first (so the database is ready for
    both), then Optuna's tables, under a cross-process lock. On SQLite the Optuna engine
    gets the same busy timeout, WAL journal and ``BEGIN IMMEDIATE`` transactions as ours,
    so several worker processes can run trials on one file.

    Args:
        url: As for :func:`open_storage`.
        heartbeat_interval: Seconds between trial heartbeats; with ``grace_period``, a
            running trial whose process died is marked failed by the next worker
            (Optuna marks this argument experimental; the warning is silenced here).
        grace_period: Seconds without heartbeat after which a trial counts as dead.
        heartbeat_stale_trial_callback: Called for each such trial, e.g.
            ``optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)``.

    Raises:
        StorageError: As :func:`open_storage`, or Optuna could not set up its tables.
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    parsed = parse_url(url)
    with open_storage(
        url, busy_timeout_s=busy_timeout_s, connect_timeout_s=connect_timeout_s
    ) as ours:
        full_url = parsed.render_as_string(hide_password=False)
        engine_kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            engine_kwargs["connect_args"] = {"timeout": busy_timeout_s}
            if parsed.database in (None, "", ":memory:"):
                raise StorageError(
                    "Optuna cannot share an in-memory SQLite database; use sqlite:///FILE"
                )
        else:
            engine_kwargs["pool_pre_ping"] = True
            engine_kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        try:
            with _init_lock(parsed, ours.engine), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(
                    full_url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=heartbeat_stale_trial_callback,
                )
        except SQLAlchemyError as exc:
            raise StorageError(describe_error(exc, _masked(parsed))) from exc
    if parsed.get_backend_name() == "sqlite":
        _sqlite_listeners(rdb.engine, busy_timeout_s=busy_timeout_s, memory=False)
        # Connections pooled during construction predate the listeners.
        rdb.engine.dispose()
    return rdb
