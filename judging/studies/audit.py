"""The audit log: admin moves, released leases, flags and withdrawn verdicts, append-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import AUDIT_ACTIONS, AuditEntry


def entry(
    action: str,
    *,
    study_id: int | None,
    actor_id: int | None = None,
    assignment_id: int | None = None,
    judgement_id: int | None = None,
    **details: Any,
) -> AuditEntry:
    """One entry, not yet added (for batches); `details` must be JSON-serialisable."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return AuditEntry(
        study_id=study_id,
        actor_id=actor_id,
        action=action,
        assignment_id=assignment_id,
        judgement_id=judgement_id,
        details=details,
    )


def record(
    session: Session,
    action: str,
    *,
    study_id: int | None,
    actor_id: int | None = None,
    assignment_id: int | None = None,
    judgement_id: int | None = None,
    **details: Any,
) -> AuditEntry:
    """Append one entry; `details` must be JSON-serialisable (ids, names, reasons)."""
    new = entry(
        action,
        study_id=study_id,
        actor_id=actor_id,
        assignment_id=assignment_id,
        judgement_id=judgement_id,
        **details,
    )
    session.add(new)
    session.flush()
    return new


def entries(session: Session, study_id: int, limit: int = 200) -> list[AuditEntry]:
    """Newest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.study_id == study_id)
            .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
    )
