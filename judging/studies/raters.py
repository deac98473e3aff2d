"""Raters and their invite links: the token is shown once and stored only as its sha256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import ROLES, Rater
from judging.errors import ConflictError, NotFoundError


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_rater(session: Session, *, name: str, role: str = "rater") -> tuple[Rater, str]:
    """Create the rater, or issue a fresh link for an existing one (the old link stops working)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ConflictError("a rater name must be 1 to 200 characters")
    if role not in ROLES:
        raise ConflictError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = secrets.token_urlsafe(32)
    rater = session.scalar(select(Rater).where(Rater.name == name))
    if rater is None:
        rater = Rater(name=name, role=role, token_hash=hash_token(token))
        session.add(rater)
    else:
        rater.token_hash = hash_token(token)
        rater.role = role
        rater.active = True
    session.flush()
    return rater, token


def rater_for_token(session: Session, token: str) -> Rater | None:
    """The active rater holding this invite token, or None."""
    if not token or len(token) > 200:
        return None
    rater = session.scalar(select(Rater).where(Rater.token_hash == hash_token(token)))
    if rater is None or not rater.active:
        return None
    rater.last_seen_at = datetime.now(UTC)
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
    return f"{base_url.rstrip('/')}/invite/{token}"
