"""The rater's pages: invite login, the queue, verdicts, skip and undo.

Every action is a plain `<form method="post">` enhanced with hx-post: htmx requests get the
`queue` block of rate.html back, plain requests a 303 redirect to /rate (post/redirect/get).
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.auth import (
    NEED_INVITE,
    CleanForm,
    Identity,
    RaterClaim,
    RaterForm,
    confirm,
    end_session,
    start_session,
)
from app.deps import SessionDep
from app.markdown import render_markdown
from app.render import is_htmx, render, templates
from judging.settings import Settings
from judging.studies import allocation, departures, leases, rating
from judging.studies import guidelines as rater_guidelines
from judging.studies.raters import end_sessions, invite_issued, redeem_invite

router = APIRouter()
templates.env.filters.setdefault("markdown", render_markdown)


def undo_window(request: Request) -> timedelta:
    """RLHF_UNDO_SECONDS (default 120); tests may set app.state.undo_window."""
    window = getattr(request.app.state, "undo_window", None)
    if isinstance(window, timedelta):
        return window
    return timedelta(seconds=int(os.environ.get("RLHF_UNDO_SECONDS", "120")))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


@router.get("/invite", response_class=HTMLResponse)
def invite_page(request: Request) -> HTMLResponse:
    """The invite link lands here; static/invite.js posts the token from the URL fragment."""
    return render(request, "invite.html", {"message": None})


@router.post("/invite", response_model=None)
def accept_invite(request: Request, session: SessionDep, form: CleanForm) -> Response:
    """Redeem a one-time invite token (from the fragment script or the paste form).

    Failed guesses are throttled per client address. A link this server issued (its tag checks
    out, `invite_issued`) is always looked up and never counts as a failure, so a guesser sharing
    an address with invitees (NAT, a proxy) locks out only guesses, never a real link.
    """
    limiter = request.app.state.invite_limiter
    client = request.client.host if request.client else "unknown"
    token = _field(form, "token") or ""
    issued = invite_issued(token, _settings(request).secret_key.get_secret_value())
    wait = 0 if issued else limiter.retry_after(client)
    if wait:
        minutes = math.ceil(wait / 60)
        context = {
            "message": "too many invalid invite links from this address; try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}. "
            "A link your study admin sent you works now."
        }
        refused = render(request, "invite.html", context, status_code=429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    outcome = redeem_invite(session, token)
    if outcome.rater is None:
        if not issued:
            limiter.failed(client)
        return render(
            request, "invite.html", {"message": outcome.message}, status_code=outcome.status
        )
    rater = outcome.rater
    response = RedirectResponse("/admin" if rater.role == "admin" else "/rate", status_code=303)
    start_session(request, response, rater)
    session.commit()
    return response


@router.get(NEED_INVITE, response_class=HTMLResponse)
def need_invite(request: Request) -> HTMLResponse:
    return render(request, "need_invite.html", {}, status_code=401)


@router.post("/logout", response_model=None)
def logout(session: SessionDep, claim: RaterClaim, _form: RaterForm) -> Response:
    """Sign out everywhere: the session version moves on, so copies of the cookie die too."""
    who = confirm(session, claim)
    end_sessions(session, who.rater_id)
    session.commit()
    response = RedirectResponse(NEED_INVITE, status_code=303)
    end_session(response)
    return response


def _page(
    request: Request, session: SessionDep, who: Identity, flash: str | None = None
) -> HTMLResponse:
    # Whenever anyone asks for work, stalled items (shown, never judged) and the work of raters
    # who left go back to the pool: that is when someone who can take them is here.
    settings = _settings(request)
    idle = timedelta(seconds=settings.idle_release_seconds)
    departures.check_presence(session, who.rater_id, idle=idle)
    lease, now = timedelta(seconds=settings.lease_seconds), datetime.now(UTC)
    expired = rating.LeaseCheck(
        cutoff=now - lease,
        release=lambda: leases.release_expired(session, lease=lease, now=now, idle=idle),
    )
    state = rating.queue_state(session, who.rater_id, undo_window(request), expired)
    if state.item is None and allocation.top_up(session, who.rater_id):
        # An adaptive study held this rater's next items beyond its frontier: opened now.
        state = rating.queue_state(session, who.rater_id, undo_window(request), expired)
    context = {
        "who": who,
        "state": state,
        "flash": flash,
        "csrf": who.csrf,
        "guidelines": state.guidelines,
    }
    response = render(request, "rate.html", context, block="queue")
    # Commit before the response leaves: get_db commits only after it is sent (FastAPI's
    # "request" scope), and the browser's next request must see this one's writes.
    session.commit()
    return response


@router.get("/rate", response_class=HTMLResponse)
def rate_page(request: Request, session: SessionDep, claim: RaterClaim) -> HTMLResponse:
    who = confirm(session, claim)
    return _page(request, session, who, request.query_params.get("flash"))


def _after(request: Request, session: SessionDep, who: Identity, flash: str) -> Response:
    session.commit()  # the verdict is durable before anyone (htmx or a redirect) asks again
    # Adaptive studies whose batch of verdicts just completed: recomputed in their own
    # transaction, after the verdict is safe.
    allocation.recompute_due(session)
    if is_htmx(request):
        return _page(request, session, who, flash)
    return RedirectResponse(f"/rate?flash={flash}", status_code=303)


@router.get("/rate/guidelines/{study_id}", response_class=HTMLResponse)
def guidelines_page(
    request: Request, study_id: int, session: SessionDep, claim: RaterClaim
) -> HTMLResponse:
    who = confirm(session, claim)
    view = rater_guidelines.for_study(session, who.rater_id, study_id)
    return render(request, "guidelines.html", {"who": who, "csrf": who.csrf, "guide": view})


@router.post("/rate/guidelines/{study_id}/seen", response_model=None)
def guidelines_seen(
    request: Request, study_id: int, session: SessionDep, claim: RaterClaim, _form: RaterForm
) -> Response:
    who = confirm(session, claim)
    rater_guidelines.mark_seen(session, who.rater_id, study_id)
    session.commit()
    if is_htmx(request):
        return _page(request, session, who)
    return RedirectResponse("/rate", status_code=303)


@router.post("/rate/undo", response_model=None)
def undo(request: Request, session: SessionDep, claim: RaterClaim, form: RaterForm) -> Response:
    who = confirm(session, claim)
    item = _field(form, "undo_item")
    if not item:
        raise rating.InvalidSubmission(
            "undo needs to know which verdict to withdraw; reload the page and use its button"
        )
    undone = rating.undo(
        session, rater_id=who.rater_id, public_id=item, window=undo_window(request)
    )
    return _after(request, session, who, "undone" if undone else "nothing-to-undo")


@router.post("/rate/{public_id}", response_model=None)
def judge(
    request: Request, public_id: str, session: SessionDep, claim: RaterClaim, form: RaterForm
) -> Response:
    who = confirm(session, claim)
    choice, rationale, client_ms, key = rating.parse_submission(
        _field(form, "choice"),
        _field(form, "rationale"),
        _field(form, "client_ms"),
        _field(form, "key"),
    )
    fresh = rating.record_judgement(
        session,
        rater_id=who.rater_id,
        public_id=public_id,
        choice=choice,
        rationale=rationale,
        idempotency_key=key,
        client_ms=client_ms,
    )
    return _after(request, session, who, "recorded" if fresh else "already-recorded")


@router.post("/rate/{public_id}/skip", response_model=None)
def skip(
    request: Request, public_id: str, session: SessionDep, claim: RaterClaim, form: RaterForm
) -> Response:
    who = confirm(session, claim)
    leases.skip_item(
        session,
        rater_id=who.rater_id,
        public_id=public_id,
        reason=_field(form, "reason"),
        max_skips=_settings(request).max_skips,
    )
    return _after(request, session, who, "skipped")


@router.post("/rate/{public_id}/flag", response_model=None)
def flag(
    request: Request, public_id: str, session: SessionDep, claim: RaterClaim, form: RaterForm
) -> Response:
    """ "Cannot judge" (broken, unsafe...): out of this queue, shown to admins with the reason."""
    who = confirm(session, claim)
    kind, reason = leases.parse_flag(_field(form, "kind"), _field(form, "flag_reason"))
    leases.flag(session, rater_id=who.rater_id, public_id=public_id, kind=kind, reason=reason)
    return _after(request, session, who, "flagged")
