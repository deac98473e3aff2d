"""Index (admins only), the API docs (admins only) and health.

Run names and each checkpoint's reward, KL and length are exactly what a rater must not see
("longer means trained"), so the index and the API schema are admin pages: a signed-in rater is
sent to their queue, anyone else to the invite notice.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import text

from app.auth import NEED_INVITE, MaybeRater
from app.deps import SessionDep
from app.render import render
from judging import assets
from judging.data.overview import run_overviews
from judging.pipeline_status import read_status

router = APIRouter()
log = logging.getLogger("app")


@router.get("/healthz", response_model=None)
def health(session: SessionDep) -> JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver failure means "not healthy", reported, not raised
        # The text can name hosts, users and database names: it goes to the log, not the client.
        log.warning("health check: database unavailable: %s", str(exc).splitlines()[0])
        # The error is handled here, so get_db would commit: roll back the failed transaction
        # instead (a commit on a connection the failure invalidated raised, and gave a 500).
        session.rollback()
        return JSONResponse({"status": "error", "database": "unavailable"}, 503)
    return JSONResponse({"status": "ok", "database": "ok"})


def _not_for_you(who: MaybeRater) -> Response | None:
    """Where a non-admin goes instead: a rater to their queue, anyone else to the invite notice."""
    if who is None:
        return RedirectResponse(NEED_INVITE, status_code=303)
    if not who.is_admin:
        return RedirectResponse("/rate", status_code=303)
    return None


@router.get("/", response_model=None)
def index(request: Request, session: SessionDep, who: MaybeRater) -> Response:
    elsewhere = _not_for_you(who)
    if elsewhere is not None:
        return elsewhere
    pipeline = read_status(request.app.state.settings.data_dir)
    context: dict[str, Any] = {
        "runs": run_overviews(session),
        "who": who,
        "pipeline": pipeline.summary() if pipeline else None,
    }
    return render(request, "index.html", context, block="runs")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """Browsers ask for it on every page that names no icon; a 404 there is console noise."""
    return FileResponse(assets.static_dir() / "favicon.svg", media_type="image/svg+xml")


@router.get("/openapi.json", include_in_schema=False, response_model=None)
def openapi_schema(request: Request, who: MaybeRater) -> Response:
    return _not_for_you(who) or JSONResponse(request.app.openapi())


SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
API_DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>RLHF checkpoint lab API</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""


@router.get("/api/docs", include_in_schema=False, response_model=None)
def api_docs(who: MaybeRater) -> Response:
    """Swagger UI from the vendored bundle, started by a static script: it works offline and under
    the strict CSP (FastAPI's `get_swagger_ui_html` starts it with an inline script and links a
    favicon on fastapi.tiangolo.com, so its page is not used)."""
    return _not_for_you(who) or HTMLResponse(API_DOCS_HTML)
