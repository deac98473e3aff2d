"""Template rendering: full pages, or one named block of the page for htmx requests."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2_fragments.fastapi import Jinja2Blocks

from judging import assets

templates = Jinja2Blocks(directory=str(assets.templates_dir()))


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render `template`; when htmx asks and a block is named, render just that block."""
    block_name = block if block and is_htmx(request) else None
    response = templates.TemplateResponse(
        request,
        template,
        context or {},
        block_name=block_name,
        status_code=status_code,
    )
    assert isinstance(response, HTMLResponse)
    return response
