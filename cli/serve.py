"""`rlhf serve`: the web app under uvicorn."""

from __future__ import annotations

import typer

from cli.common import console, settings


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (default: RLHF_HOST)."),
    port: int | None = typer.Option(None, help="Port (default: RLHF_PORT)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Start the web app and print its URL."""
    import uvicorn

    from judging.data.db import check_connection, make_engine

    cfg = settings()
    engine = make_engine(cfg.resolved_database_url)
    check_connection(engine)
    engine.dispose()
    bind_host, bind_port = host or cfg.host, port or cfg.port
    console.print(f"RLHF lab on [bold]http://{bind_host}:{bind_port}/[/bold]  (Ctrl-C to stop)")
    # proxy_headers=False: uvicorn would take X-Forwarded-For from any loopback peer; the app
    # applies it only from RLHF_TRUSTED_PROXIES.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        reload=reload,
        proxy_headers=False,
    )
