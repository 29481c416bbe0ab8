"""HTTP API (FastAPI) over the study database: studies, trials, fronts, plots, runs.

``create_app(storage_url)`` builds the application; ``paretoedge serve`` runs it with
uvicorn. Read endpoints are open; write endpoints (launch and stop a study) need the
bearer token of ``PARETOEDGE_API_TOKEN`` and are disabled (403) without one. Needs the
``api`` extra: without FastAPI, importing this package raises
:class:`~paretoedge.errors.MissingExtraError` naming ``pip install 'paretoedge[api]'``.
"""

from __future__ import annotations

from paretoedge.errors import MissingExtraError

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # the extra is missing
    raise MissingExtraError(exc.name or "fastapi", "api") from exc

from paretoedge.api._app import create_app, status_of  # noqa: E402
from paretoedge.api._routes import API_MAX_PAGE, API_MAX_PLOT_POINTS  # noqa: E402

__all__ = ["API_MAX_PAGE", "API_MAX_PLOT_POINTS", "create_app", "status_of"]
