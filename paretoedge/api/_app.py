"""The FastAPI application factory and the error translation."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from paretoedge.api._deps import WRITES_DISABLED
from paretoedge.api._jobs import ConflictError, JobManager
from paretoedge.api._routes import read, write
from paretoedge.errors import (
    ConfigError,
    MissingExtraError,
    NotFoundError,
    ParetoEdgeError,
    StorageError,
    shorten,
)

_log = logging.getLogger(__name__)

#: Largest request body accepted (bytes).
API_MAX_BODY = 1024 * 1024
#: Longest error message in a response.
API_MAX_ERROR = 500


def status_of(exc: ParetoEdgeError) -> int:
    """The HTTP status of a paretoedge error (the body carries its message unchanged)."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, StorageError):
        return 503
    if isinstance(exc, MissingExtraError):
        return 501
    return 400


def _safe(value: Any) -> Any:
    """``value`` if it is plain finite JSON, else its ``repr`` (cut to 200 characters)."""
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, str) else value[:200]
    if isinstance(value, float) and math.isfinite(value):
        return value
    return repr(value)[:200]


def create_app(
    storage_url: str | None = None,
    *,
    api_token: str | None = None,
    jobs_dir: Path | None = None,
) -> FastAPI:
    """The API over the database at ``storage_url`` (default: ``PARETOEDGE_STORAGE``).

    Args:
        api_token: Bearer token of the write endpoints (default: ``PARETOEDGE_API_TOKEN``);
            without one the write endpoints answer 403, which is logged at start.
        jobs_dir: Where launched studies keep their config and log (default: under
            ``PARETOEDGE_HOME``).

    Raises:
        StorageError: The database cannot be opened.
    """
    from paretoedge.settings import get_settings
    from paretoedge.storage import check_url, open_storage

    settings = get_settings()
    if storage_url is None:
        url = check_url(settings.storage, field="PARETOEDGE_STORAGE")
    else:
        url = check_url(storage_url, field="storage")
    token = api_token if api_token is not None else settings.api_token
    storage = open_storage(url)
    jobs_root = jobs_dir or settings.home / "api-jobs"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not token:
            _log.warning("%s; only read endpoints are served", WRITES_DISABLED)
        else:
            _log.info("write endpoints enabled (bearer token from PARETOEDGE_API_TOKEN)")
        try:
            yield
        finally:
            app.state.jobs.shutdown()
            storage.close()

    app = FastAPI(
        title="paretoedge",
        summary="Per-device Pareto fronts of compressed transformers",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.storage = storage
    app.state.api_token = token or None
    jobs_root.mkdir(parents=True, exist_ok=True)
    app.state.jobs = JobManager(url, jobs_root)  # the unmasked URL: the child needs it
    app.include_router(read)
    app.include_router(write)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI echoes each bad input back; a body such as ``Infinity`` (Python's JSON
        # parser accepts it) cannot be encoded in the response, so values become strings.
        detail = [
            {
                "type": e.get("type"),
                "loc": list(e.get("loc", ())),
                "msg": e.get("msg"),
                **({"input": _safe(e["input"])} if "input" in e else {}),
                **({"ctx": {k: _safe(v) for k, v in e["ctx"].items()}} if e.get("ctx") else {}),
            }
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ParetoEdgeError)
    async def _paretoedge_error(_request: Request, exc: ParetoEdgeError) -> JSONResponse:
        detail = shorten(str(exc), API_MAX_ERROR)
        return JSONResponse(status_code=status_of(exc), content={"detail": detail})

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        # A study document is a few kilobytes; refuse huge bodies before reading them.
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > API_MAX_BODY):
            return JSONResponse(
                status_code=413,
                content={"detail": f"request body larger than {API_MAX_BODY:,} bytes"},
            )
        return await call_next(request)

    return app
