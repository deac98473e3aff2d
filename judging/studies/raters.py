"""Raters and their invite links: the token is shown once and stored only as its sha256.

Links are one-time and expire (DEFAULT_INVITE_TTL). Every session cookie carries the rater's
session_version; re-inviting, revoking or signing out bumps it, which ends all old sessions.

A token is `<random>.<tag>`, the tag an HMAC of the random part under the deployment's secret
key: the app can tell a link it issued from a guess without the database, so throttling guesses
from an address never refuses a real invitee there (`invite_issued`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import ROLES, Rater
from judging.errors import ConflictError, NotFoundError
from judging.settings import get_settings


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


DEFAULT_INVITE_TTL = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_TAG_CHARS = 22  # 132 bits of HMAC-SHA256, base64url


def _tag(body: str, key: str) -> str:
    mac = hmac.new(key.encode(), b"rlhf-invite\x00" + body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:_TAG_CHARS]


def invite_issued(token: str, key: str) -> bool:
    """Whether the token carries the tag `key` gives its random part: a link issued with this
    key (perhaps used, expired or replaced since), not a guess. Constant-time comparison."""
    body, dot, tag = token.strip().rpartition(".")
    if not dot or not body or len(token) > 200:
        return False
    return hmac.compare_digest(tag.encode(), _tag(body, key).encode())


def invite_rater(
    session: Session,
    *,
    name: str,
    role: str = "rater",
    ttl: timedelta = DEFAULT_INVITE_TTL,
    signing_key: str | None = None,
) -> tuple[Rater, str]:
    """Create the rater, or issue a fresh link for an existing one.

    The old link stops working and every session the rater had is ended. The link is tagged
    with `signing_key`, by default the secret key of this process's settings (the app passes
    its own); a link tagged with another key still works, but counts as a guess when it fails.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise ConflictError("a rater name must be 1 to 200 characters")
    if role not in ROLES:
        raise ConflictError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    key = signing_key if signing_key is not None else get_settings().secret_key.get_secret_value()
    body = secrets.token_urlsafe(32)
    token = f"{body}.{_tag(body, key)}"
    rater = session.scalar(select(Rater).where(Rater.name == name))
    if rater is None:
        rater = Rater(name=name, role=role, token_hash=hash_token(token), session_version=0)
        session.add(rater)
    else:
        rater.token_hash = hash_token(token)
        rater.role = role
        rater.active = True
        rater.session_version += 1
    rater.invite_expires_at = _now() + ttl
    session.flush()
    return rater, token


def invite_outstanding(rater: Rater) -> bool:
    """Whether the rater's last link is still unused and unexpired."""
    expires = rater.invite_expires_at
    return expires is not None and _aware(expires) > _now()


@dataclass(frozen=True)
class InviteOutcome:
    """The rater signed in by a token, or why nobody was (HTTP status and one-line message)."""

    rater: Rater | None
    status: int = 200
    message: str = ""


def redeem_invite(session: Session, token: str) -> InviteOutcome:
    """Use an invite token once: the rater it signs in, or why it does not work."""
    token = token.strip()
    if not token or len(token) > 200:
        return InviteOutcome(None, 404, "this invite link is not valid")
    # FOR UPDATE: two tabs redeeming the same link at once must not both get a session.
    rater = session.scalar(
        select(Rater).where(Rater.token_hash == hash_token(token)).with_for_update()
    )
    if rater is None or not rater.active:
        return InviteOutcome(
            None, 404, "this invite link is not valid (it may have been replaced or revoked)"
        )
    if rater.invite_expires_at is None:
        return InviteOutcome(
            None, 410, "this invite link has already been used; ask your study admin for a new one"
        )
    if _aware(rater.invite_expires_at) <= _now():
        return InviteOutcome(
            None, 410, "this invite link has expired; ask your study admin for a new one"
        )
    rater.invite_expires_at = None
    rater.last_seen_at = _now()
    session.flush()
    return InviteOutcome(rater)


def end_sessions(session: Session, rater_id: int) -> None:
    """Sign the rater out everywhere (every cookie carries the old version)."""
    rater = get_rater(session, rater_id)
    rater.session_version += 1
    session.flush()


def revoke_rater(session: Session, name: str) -> Rater:
    """Lock the rater out now: sessions end, the outstanding link dies, they stay in the data."""
    rater = get_rater_by_name(session, name)
    rater.active = False
    rater.invite_expires_at = None
    rater.session_version += 1
    session.flush()
    return rater


def get_rater(session: Session, rater_id: int) -> Rater:
    rater = session.get(Rater, rater_id)
    if rater is None:
        raise NotFoundError(f"rater {rater_id} does not exist")
    return rater


def get_rater_by_name(session: Session, name: str) -> Rater:
    rater = session.scalar(select(Rater).where(Rater.name == name))
    if rater is None:
        raise NotFoundError(f"rater {name!r} does not exist")
    return rater


def list_raters(session: Session) -> list[Rater]:
    return list(session.scalars(select(Rater).order_by(Rater.name)))


def invite_url(base_url: str, token: str) -> str:
    """The token rides in the fragment: browsers never send it, so no server or proxy logs it."""
    return f"{base_url.rstrip('/')}/invite#{token}"
