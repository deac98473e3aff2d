"""Index and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from app.deps import SessionDep
from app.render import render
from judging.data.overview import run_overviews
from judging.pipeline_status import read_status

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
    pipeline = read_status(request.app.state.settings.data_dir)
    context: dict[str, Any] = {
        "runs": run_overviews(session),
        "pipeline": pipeline.summary() if pipeline else None,
    }
    return render(request, "index.html", context, block="runs")
