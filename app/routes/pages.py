"""Index and health."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from app.deps import SessionDep
from app.render import render
from judging.data.overview import run_overviews

router = APIRouter()
log = logging.getLogger("app")


@router.get("/healthz", response_model=None)
def health(session: SessionDep) -> JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver failure means "not healthy", reported, not raised
        # The text can name hosts, users and database names: it goes to the log, not the client.
        log.warning("health check: database unavailable: %s", str(exc).splitlines()[0])
        return JSONResponse({"status": "error", "database": "unavailable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep) -> HTMLResponse:
    context: dict[str, Any] = {"runs": run_overviews(session)}
    return render(request, "index.html", context, block="runs")
