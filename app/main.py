"""Application factory. The engine is built per app (in the factory), never at import time."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from app.render import render
from app.routes import admin, pages, research
from app.routes import judging as judging_routes
from judging.data.db import make_engine, make_session_factory
from judging.errors import ConflictError, LabError, NotFoundError, PermissionDeniedError
from judging.settings import PROJECT_ROOT, Settings, get_settings

_STATUS = {NotFoundError: 404, PermissionDeniedError: 403, ConflictError: 409}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # The schema and its viewers are served by app.routes.pages, for admins only.
    app = FastAPI(title="RLHF checkpoint lab", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = make_engine(settings.resolved_database_url)
    app.state.session_factory = make_session_factory(app.state.engine)
    app.mount("/static", StaticFiles(directory=str(PROJECT_ROOT / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(judging_routes.router)
    app.include_router(admin.router)
    app.include_router(research.router)
    app.add_exception_handler(LabError, _lab_error)  # type: ignore[arg-type]
    return app


async def _lab_error(request: Request, exc: LabError) -> HTMLResponse | JSONResponse:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"detail": str(exc)}, status_code=status)
    return render(
        request, "error.html", {"message": str(exc), "status": status}, status_code=status
    )
