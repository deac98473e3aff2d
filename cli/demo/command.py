"""`rlhf demo run|up|status`: the product's main job end to end, resumable stage by stage.

The commands import the pipeline (`cli.demo.stages`, which loads the core's analysis and the
training configs) inside their bodies, so `rlhf --help` stays instant.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import typer

from cli.common import console, settings
from judging.settings import PROJECT_ROOT
from judging.stopping import stop_on_signals

app = typer.Typer(help="The demo: train, evaluate, judge and recommend.", no_args_is_help=True)


@app.command("run")
def run(
    base_url: str | None = typer.Option(None, "--base-url", help="The running web app."),
) -> None:
    """Run (or resume) the demo pipeline; the web app must be serving at --base-url."""
    from cli.demo import stages
    from cli.demo.context import DemoContext

    # Explicitly: started in the background by a shell, this process inherits SIGINT ignored,
    # and `demo up` stops it with SIGINT.
    stop_on_signals()
    s = settings()
    ctx = DemoContext(data_dir=s.data_dir, base_url=base_url or f"http://{s.host}:{s.port}")
    status = stages.run_demo(ctx)
    console.print(status.summary())


@app.command("status")
def status() -> None:
    """Print the pipeline's status line."""
    from cli.demo.status import status_line

    console.print(status_line(settings().data_dir))


@app.command("up")
def up() -> None:
    """Serve the web app now and run the pipeline in the background (`make demo`)."""
    import uvicorn

    from cli.demo.invites import DEMO_ADMIN, admin_link

    s = settings()
    base_url = f"http://{s.host}:{s.port}"
    link = admin_link(s.data_dir, base_url)
    child = subprocess.Popen([sys.executable, "-m", "cli.main", "demo", "run"], cwd=PROJECT_ROOT)
    console.print(f"RLHF lab on [bold]{base_url}/[/bold]  (Ctrl-C stops both)")
    if link:
        console.print(f"Open the dashboard as the demo admin (one-time link): [bold]{link}[/bold]")
    else:
        console.print(
            f"The demo admin link was used; `rlhf raters invite {DEMO_ADMIN} --admin` makes a new"
            " one (and ends the old browser's session)."
        )
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=s.host,
            port=s.port,
            log_level="warning",
            proxy_headers=False,  # the app applies RLHF_TRUSTED_PROXIES itself
        )
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            child.wait(timeout=120)
