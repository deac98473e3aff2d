"""Index and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from sqlalchemy import text

from app.deps import SessionDep
from app.render import render
from judging.data.overview import run_overviews
from judging.settings import PROJECT_ROOT

router = APIRouter()


@router.get("/healthz", response_model=None)
def health(session: SessionDep) -> JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver failure means "not healthy", reported, not raised
        return JSONResponse({"status": "error", "database": str(exc).splitlines()[0]}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> HTMLResponse:
    context: dict[str, Any] = {"runs": run_overviews(session)}
    return render(request, "index.html", context, block="runs")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """Browsers ask for it on every page that names no icon; a 404 there is console noise."""
    return FileResponse(PROJECT_ROOT / "static" / "favicon.svg", media_type="image/svg+xml")
