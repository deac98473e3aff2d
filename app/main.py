"""Application factory. The engine is built per app (in the factory), never at import time."""

from __future__ import annotations

import gc
import logging

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.render import render, templates
from app.routes import admin, pages, research
from app.routes import judging as judging_routes
from app.security import FailureLimiter, SecurityMiddleware
from judging import assets
from judging.data.db import make_engine, make_session_factory
from judging.errors import ConflictError, LabError, NotFoundError, PermissionDeniedError
from judging.settings import Settings, get_settings

log = logging.getLogger("app")
_STATUS = {NotFoundError: 404, PermissionDeniedError: 403, ConflictError: 409}


def _freeze_startup_objects() -> None:
    """Keep the objects of start-up (modules, SQLAlchemy's and Jinja's caches) out of garbage
    collection. A full collection of a worker scanned them all: in a 120 s run under 100
    simulated raters one took 169 ms, stalling every request in flight; with them frozen, the
    same run had none and no collection over 11 ms. Once per process: the first app made is the
    server's."""
    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    _freeze_startup_objects()
    # The schema and its viewer (Swagger UI, vendored) are served by app.routes.pages, admins only.
    app = FastAPI(title="RLHF checkpoint lab", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = _engine(settings)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.state.invite_limiter = FailureLimiter()
    # Template edits show without a restart only where someone edits them; elsewhere every
    # render would stat each template file (about ten per rater page) to find out.
    templates.env.auto_reload = settings.environment == "local"
    app.mount("/static", StaticFiles(directory=str(assets.static_dir())), name="static")
    app.include_router(pages.router)
    app.include_router(judging_routes.router)
    app.include_router(admin.router)
    app.include_router(research.router)
    app.add_exception_handler(LabError, _lab_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeoutError, _busy)  # type: ignore[arg-type]
    app.add_middleware(SecurityMiddleware)
    # Outermost, so that everything inside sees the client a trusted proxy names. Servers must
    # not apply proxy headers themselves (`rlhf serve` turns uvicorn's off: it trusts loopback
    # by default, which let any local sender pick its address).
    if settings.trusted_proxy_list:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    return app


def _engine(settings: Settings) -> Engine:
    """The app's engine; on PostgreSQL a pool of `db_pool_size` connections plus as many again
    in overflow. A request holds at most one; handlers beyond that wait for a checkout (and
    answer 503 after the pool timeout, `_busy`)."""
    url = settings.resolved_database_url
    if make_url(url).get_backend_name() != "postgresql":
        return make_engine(url)
    size = settings.db_pool_size
    return make_engine(url, pool_size=size, max_overflow=size)


def _reply(request: Request, message: str, status: int) -> HTMLResponse | JSONResponse:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"detail": message}, status_code=status)
    return render(request, "error.html", {"message": message, "status": status}, status_code=status)


async def _busy(request: Request, _exc: PoolTimeoutError) -> HTMLResponse | JSONResponse:
    """Every pooled connection stayed busy for the pool timeout: overloaded, not broken."""
    log.warning("no database connection free in time for %s", request.url.path)
    return _reply(request, "the server is busy; try again in a moment", 503)


async def _database_error(request: Request, exc: DBAPIError) -> HTMLResponse | JSONResponse:
    """The database dropped or refused the connection: a clear 503; the pool recovers by itself.

    A value the database cannot hold (an id past its integer range, say) is the client's error.
    """
    if isinstance(exc, DataError):
        log.info("refused a value on %s: %s", request.url.path, str(exc.orig).strip()[:200])
        return _reply(request, "a value in this request is out of range or malformed", 400)
    if not exc.connection_invalidated and not isinstance(exc, OperationalError | InterfaceError):
        raise exc
    log.warning("database unavailable on %s: %s", request.url.path, str(exc.orig).strip()[:200])
    return _reply(request, "the database is unavailable right now; try again in a moment", 503)


async def _lab_error(request: Request, exc: LabError) -> HTMLResponse | JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return _reply(request, str(exc), status)
