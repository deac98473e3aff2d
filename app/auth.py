"""Cookie sessions from invite links, roles, and CSRF tokens tied to the session.

The cookie holds {rater id, csrf token, session version} signed with itsdangerous
(settings.secret_key); it is HttpOnly, SameSite=Lax and Secure in production. A cookie whose
version is not the rater's current one (revoked, re-invited, signed out) is no session at all.
Admin and public pages read the rater's row in a dependency (`optional_identity`); the rater's
routes, the hot path, take the cookie's `Claim` and `confirm` it first thing in the handler, on
the handler's own connection (test_access_matrix.py holds every route to one or the other).
Every POST must echo the session's CSRF token in the form (or the X-CSRF-Token header), compared in
constant time. Forms are refused (400) when a value holds a NUL byte or is not UTF-8.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine, Row, bindparam, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.deps import SessionDep
from judging.data.db import core_connection
from judging.data.models import Rater
from judging.errors import LabError, PermissionDeniedError
from judging.settings import Settings

COOKIE = "rlhf_session"
MAX_AGE_S = 30 * 24 * 3600
NEED_INVITE = "/need-invite"


@dataclass(frozen=True)
class Identity:
    rater_id: int
    name: str
    is_admin: bool
    csrf: str


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return _serializer_for(settings.secret_key.get_secret_value())


def _serializer_for(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="rlhf-session")


class BadInputError(LabError):
    """Bytes no form field may hold (NUL, invalid UTF-8): HTTP 400."""


def start_session(request: Request, response: Response, rater: Rater) -> None:
    """Sign a fresh session (new CSRF token, the rater's current version) into the cookie."""
    settings: Settings = request.app.state.settings
    payload = {"r": rater.id, "c": secrets.token_urlsafe(24), "v": rater.session_version}
    secure = settings.secure_cookies
    response.set_cookie(
        COOKIE,
        _serializer(settings).dumps(payload),
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" if secure is None else secure,
        path="/",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


def _payload(request: Request) -> dict[str, object] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    settings: Settings = request.app.state.settings
    try:
        data, signed_at = _verified(settings.secret_key.get_secret_value(), raw)
    except BadSignature:
        return None
    if time.time() - signed_at > MAX_AGE_S:
        return None
    return data if isinstance(data, dict) else None


@lru_cache(maxsize=4096)
def _verified(secret: str, raw: str) -> tuple[Any, float]:
    """The payload of a cookie whose signature holds, and when it was signed; each cookie is
    checked once per process (a rater sends the same one with every request: deriving the key
    and the HMAC was 2.5% of the app's CPU under load). A bad signature raises and is not kept.
    The caller checks the age, so a cookie cached young still expires on time."""
    data, signed = _serializer_for(secret).loads(raw, return_timestamp=True)
    return data, signed.timestamp()


_SESSION_ROW = select(Rater.name, Rater.role, Rater.active, Rater.session_version).where(
    Rater.id == bindparam("rater_id")
)
_SessionRow = Row[str, str, bool, int]


@dataclass(frozen=True)
class Claim:
    """What a cookie with a good signature and age says: not yet a session, since the rater may
    have been revoked or signed out since (`_identity` checks the version against their row)."""

    rater_id: int
    csrf: str
    version: object


def _claim(request: Request) -> Claim | None:
    data = _payload(request)
    if data is None:
        return None
    rater_id, csrf = data.get("r"), data.get("c")
    if not isinstance(rater_id, int) or not isinstance(csrf, str):
        return None
    return Claim(rater_id, csrf, data.get("v"))


def _identity(claim: Claim, row: _SessionRow | None) -> Identity | None:
    if row is None:
        return None
    name, role, active, version = row
    if not active or claim.version != version:
        return None
    return Identity(claim.rater_id, name, role == "admin", claim.csrf)


def _session_row(session: Session, rater_id: int) -> _SessionRow | None:
    """The rater's name, role, active flag and session version, with the connection handed back
    before the handler waits for a worker thread: a request holding a pooled connection while it
    queues for a thread, when every thread queues for a connection, deadlocked the app under 100
    concurrent raters (pool timeouts after 30 s, then 500s).

    On an engine the read runs in autocommit (no BEGIN/COMMIT round trips for one SELECT); a
    session bound to a connection (tests' rolled-back transaction) commits instead.
    """
    bind = session.get_bind()
    if isinstance(bind, Engine):
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return conn.execute(_SESSION_ROW, {"rater_id": rater_id}).first()
    row = session.execute(_SESSION_ROW, {"rater_id": rater_id}).first()
    session.commit()
    return row


async def optional_identity(request: Request, session: SessionDep) -> Identity | None:
    """The rater of a valid session cookie whose version is current, else None.

    The signature check runs on the event loop; only the database read goes to a thread.
    """
    claim = _claim(request)
    if claim is None:
        return None
    return _identity(claim, await run_in_threadpool(_session_row, session, claim.rater_id))


async def session_claim(request: Request) -> Claim:
    """The claim of the rater's cookie, checked on the event loop without the database; the
    handler confirms it (`confirm`) in its own thread and transaction. Without one, send the
    browser to the invite notice."""
    claim = _claim(request)
    if claim is None:
        raise HTTPException(status_code=303, headers={"Location": NEED_INVITE})
    return claim


def confirm(session: Session, claim: Claim) -> Identity:
    """The rater's session, or the invite notice (303) when it was revoked or ended.

    Read on the handler's connection, in its transaction: the rater's routes confirm here instead
    of in a dependency of their own (`optional_identity`), which cost every request a thread hop
    and a pool checkout more (a tenth of the app's CPU under 100 raters).
    """
    row = core_connection(session).execute(_SESSION_ROW, {"rater_id": claim.rater_id}).first()
    identity = _identity(claim, row)
    if identity is None:
        raise HTTPException(status_code=303, headers={"Location": NEED_INVITE})
    return identity


# These two only look at what optional_identity found: async, so FastAPI runs them on the event
# loop instead of sending each to a worker thread and back (one hop fewer on every request).
async def current_identity(
    identity: Annotated[Identity | None, Depends(optional_identity)],
) -> Identity:
    """The signed-in rater; without a valid session, send the browser to the invite notice."""
    if identity is None:
        raise HTTPException(status_code=303, headers={"Location": NEED_INVITE})
    return identity


async def admin_identity(identity: Annotated[Identity, Depends(current_identity)]) -> Identity:
    if not identity.is_admin:
        raise PermissionDeniedError("this page is for study admins only")
    return identity


CurrentRater = Annotated[Identity, Depends(current_identity)]
RaterClaim = Annotated[Claim, Depends(session_claim)]
MaybeRater = Annotated[Identity | None, Depends(optional_identity)]
AdminRater = Annotated[Identity, Depends(admin_identity)]


def check_csrf(expected: str, supplied: str | None) -> None:
    if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise PermissionDeniedError("missing or invalid CSRF token; reload the page and try again")


def _check_urlencoded_utf8(body: bytes) -> None:
    for pair in body.split(b"&"):
        for piece in pair.split(b"=", 1):
            try:
                unquote_to_bytes(piece.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                raise BadInputError("the form holds text that is not valid UTF-8") from None


def _check_multipart_utf8(body: bytes) -> None:
    """Starlette decodes a multipart value that is not UTF-8 as Latin-1 (b"caf\\xe9" becomes
    "café"), so nothing in the parsed form shows it: the raw body is checked instead. No form
    here takes a file, so every byte of a multipart body (delimiters and part headers are ASCII)
    must be UTF-8 text."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError("the form holds text that is not valid UTF-8") from None


async def clean_form(request: Request) -> FormData:
    """The POSTed form, refused (400) if any name or value holds a NUL byte or invalid UTF-8,
    whatever the form's encoding."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        _check_urlencoded_utf8(await request.body())
    elif content_type.startswith("multipart/"):
        _check_multipart_utf8(await request.body())
    form = await request.form()
    for name, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if "\x00" in name or "\x00" in value:
            raise BadInputError(f"the form field {name.strip(chr(0))!r} contains a NUL byte")
    return form


async def _checked_form(request: Request, csrf: str) -> FormData:
    form = await clean_form(request)
    token = form.get("csrf_token") or request.headers.get("X-CSRF-Token")
    check_csrf(csrf, token if isinstance(token, str) else None)
    return form


async def rater_form(request: Request, claim: RaterClaim) -> FormData:
    """The POSTed form of a rater's cookie, after the input and CSRF checks (the token is the
    signed cookie's; the handler still confirms the session before it acts)."""
    return await _checked_form(request, claim.csrf)


async def admin_form(request: Request, identity: AdminRater) -> FormData:
    return await _checked_form(request, identity.csrf)


CleanForm = Annotated[FormData, Depends(clean_form)]
RaterForm = Annotated[FormData, Depends(rater_form)]
AdminForm = Annotated[FormData, Depends(admin_form)]
