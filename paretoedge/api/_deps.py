"""Dependencies of the routers, as ``Annotated`` aliases (``StorageDep``, ``WriteAccess``)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from paretoedge.api._jobs import JobManager
from paretoedge.storage import Storage

_bearer = HTTPBearer(auto_error=False, description="PARETOEDGE_API_TOKEN of the server")

#: Why write endpoints answer 403 when the server has no token.
WRITES_DISABLED = (
    "write endpoints are disabled: the server was started without PARETOEDGE_API_TOKEN"
)


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse a write unless it carries the server's bearer token (constant-time compare)."""
    token: str | None = request.app.state.api_token
    if not token:
        raise HTTPException(status.HTTP_403_FORBIDDEN, WRITES_DISABLED)
    given = credentials.credentials if credentials is not None else ""
    if credentials is None or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <PARETOEDGE_API_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


StorageDep = Annotated[Storage, Depends(get_storage)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
WriteAccess = Depends(require_token)
