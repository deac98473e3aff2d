"""`rlhf raters ...`: invite raters (the link is printed once), revoke them, list them."""

from __future__ import annotations

import typer

from cli.common import console, db_session, settings

app = typer.Typer(help="Raters and their invite links.", no_args_is_help=True)


@app.command("invite")
def invite(
    name: str = typer.Argument(
        ..., help="The rater's name (unique); an existing name gets a new link."
    ),
    admin: bool = typer.Option(False, "--admin", help="Give this rater the admin role."),
    base_url: str | None = typer.Option(
        None, help="Public URL of the app (default: http://RLHF_HOST:RLHF_PORT)."
    ),
) -> None:
    """Create a rater (or re-issue their link) and print the invite link once."""
    from judging.studies.raters import invite_rater, invite_url

    cfg = settings()
    with db_session() as session:
        rater, token = invite_rater(session, name=name, role="admin" if admin else "rater")
        role = rater.role
    url = invite_url(base_url or f"http://{cfg.host}:{cfg.port}", token)
    console.print(f"{role} {name!r}: {url}", highlight=False, soft_wrap=True)
    console.print(
        "[dim]Only a hash is stored: copy the link now. It works once and expires in 7 days; "
        "the part after # never reaches the server's logs.[/dim]"
    )


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The rater's name.")) -> None:
    """End the rater's sessions at once and kill their invite link (their verdicts stay)."""
    from judging.studies.raters import revoke_rater

    with db_session() as session:
        revoke_rater(session, name)
    console.print(f"revoked {name!r}: sessions ended, invite link disabled", highlight=False)


@app.command("list")
def list_() -> None:
    """List raters with role and last visit."""
    from judging.studies.raters import list_raters

    with db_session() as session:
        for r in list_raters(session):
            seen = r.last_seen_at.strftime("%Y-%m-%d %H:%M") if r.last_seen_at else "never"
            state = "active" if r.active else "revoked"
            console.print(f"{r.id}\t{r.name}\t{r.role}\t{state}\t{seen}", highlight=False)
