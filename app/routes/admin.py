"""Admin pages: raters and invites, studies (create, extend, close), QC and exports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from app.auth import AdminForm, AdminRater
from app.deps import SessionDep
from app.render import render
from judging.analysis import exports
from judging.data.models import Rater, Study
from judging.errors import ConflictError, NotFoundError
from judging.settings import Settings
from judging.studies import allocation, audit, departures, leases, lookups, pairing, qc, transfers
from judging.studies import guidelines as rater_guidelines
from judging.studies import service as studies
from judging.studies.raters import get_rater, invite_rater, invite_url, list_raters, revoke_rater

router = APIRouter(prefix="/admin")


_MAX_INT = 2**31 - 1  # the database's integer columns


def _ints(form: Any, name: str) -> list[int]:
    try:
        values = [int(v) for v in form.getlist(name) if str(v).strip()]
    except ValueError:
        raise ConflictError(f"{name} must be numeric ids") from None
    if any(not 0 <= v <= _MAX_INT for v in values):
        raise ConflictError(f"{name} holds an id out of range")
    return values


def _number(form: Any, name: str, default: float, kind: type = float) -> Any:
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        return kind(default)
    try:
        value = kind(str(raw))
    except (ValueError, OverflowError):
        raise ConflictError(f"{name} must be a number, got {raw!r}") from None
    if abs(value) > _MAX_INT or value != value:  # out of the column's range, or NaN
        raise ConflictError(f"{name} is out of range: {raw!r}")
    return value


def _index(
    request: Request, session: SessionDep, who: AdminRater, new_link: str | None = None
) -> HTMLResponse:
    context = {
        "who": who,
        "csrf": who.csrf,
        "studies": lookups.list_studies(session),
        "raters": list_raters(session),
        "new_link": new_link,
        "message": request.query_params.get("message"),
    }
    return render(request, "admin/index.html", context)


@router.get("", response_class=HTMLResponse)
def admin_index(request: Request, session: SessionDep, who: AdminRater) -> HTMLResponse:
    return _index(request, session, who)


@router.post("/raters", response_class=HTMLResponse)
def invite(request: Request, session: SessionDep, who: AdminRater, form: AdminForm) -> HTMLResponse:
    role = "admin" if form.get("role") == "admin" else "rater"
    settings: Settings = request.app.state.settings
    key = settings.secret_key.get_secret_value()
    _rater, token = invite_rater(
        session, name=str(form.get("name") or ""), role=role, signing_key=key
    )
    # Shown once on this response; only the hash is stored.
    session.commit()
    return _index(request, session, who, invite_url(str(request.base_url), token))


@router.post("/raters/{rater_id}/revoke", response_model=None)
def revoke(rater_id: int, session: SessionDep, who: AdminRater, _form: AdminForm) -> Response:
    """End the rater's sessions now and kill their link; their verdicts stay."""
    from urllib.parse import quote

    if rater_id == who.rater_id:
        raise ConflictError("you cannot revoke yourself; ask another admin")
    rater = revoke_rater(session, get_rater(session, rater_id).name)
    session.commit()  # before the redirect: get_db would commit only after the response is sent
    return RedirectResponse(f"/admin?message={quote(f'revoked {rater.name}')}", status_code=303)


@router.get("/studies/new", response_class=HTMLResponse)
def new_study(request: Request, session: SessionDep, who: AdminRater) -> HTMLResponse:
    context = {"who": who, "csrf": who.csrf, "options": qc.form_options(session)}
    return render(request, "admin/study_new.html", context)


@router.post("/studies", response_model=None)
def create_study(session: SessionDep, form: AdminForm) -> Response:
    reference = _ints(form, "reference")
    study = studies.create_study(
        session,
        name=str(form.get("name") or ""),
        checkpoint_ids=_ints(form, "checkpoints"),
        prompt_set_id=(_ints(form, "prompt_set") or [0])[0],
        rater_ids=_ints(form, "raters"),
        reference_checkpoint_id=reference[0] if reference else None,
        raters_per_comparison=_number(form, "raters_per_comparison", 2, int),
        attention_check_rate=_number(form, "attention_check_rate", 0.05),
        base_reuse=_number(form, "base_reuse", 1, int),
        allocation=str(form.get("allocation") or allocation.UNIFORM),
        allocation_target=_number(form, "allocation_target", allocation.DEFAULT_TARGET),
    )
    min_pass = _number(form, "min_attention_pass_rate", 0.8)
    if not 0 <= min_pass <= 1:
        raise ConflictError("the minimum attention pass rate must be within 0..1")
    study.min_attention_pass_rate = min_pass
    study.guidelines = rater_guidelines.clean(str(form.get("guidelines") or ""))
    session.commit()  # before the redirect: get_db would commit only after the response is sent
    return RedirectResponse(f"/admin/studies/{study.id}", status_code=303)


def _study(session: SessionDep, study_id: int) -> Any:
    return lookups.get_study(session, study_id)


def _addable(session: SessionDep, study: Any) -> dict[str, list[qc.Option]]:
    """Checkpoints and raters that the study page may still add."""
    options = qc.form_options(session)
    members = set(lookups.study_rater_ids(session, study.id))
    taken = {*lookups.study_checkpoint_ids(session, study.id), study.reference_checkpoint_id}
    return {
        "addable_checkpoints": [c for c in options.checkpoints if c.id not in taken],
        "addable_raters": [r for r in options.raters if r.id not in members],
    }


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(
    request: Request, study_id: int, session: SessionDep, who: AdminRater
) -> HTMLResponse:
    study = _study(session, study_id)
    context = {
        "who": who,
        "csrf": who.csrf,
        "study": study,
        "report": qc.study_qc(session, study),
        "reference": qc.checkpoint_label(session, study.reference_checkpoint_id),
        "message": request.query_params.get("message"),
        "attention_warning": pairing.attention_warning(session, study),
        "allocation": allocation.describe(session, study),
        **_addable(session, study),
    }
    return render(request, "admin/study.html", context)


@router.get("/studies/{study_id}/qc", response_class=HTMLResponse)
def qc_page(request: Request, study_id: int, session: SessionDep, who: AdminRater) -> HTMLResponse:
    study = _study(session, study_id)
    context = {
        "who": who,
        "csrf": who.csrf,
        "study": study,
        "report": qc.study_qc(session, study),
        "message": request.query_params.get("message"),
        "attention_warning": pairing.attention_warning(session, study),
        **_integrity(request, session, study),
        "allocation": allocation.describe(session, study),
    }
    return render(request, "admin/qc.html", context)


def _integrity(request: Request, session: SessionDep, study: Study) -> dict[str, Any]:
    """Completion, "cannot judge" flags and the audit log for the QC page."""
    settings: Settings = request.app.state.settings
    idle = timedelta(seconds=settings.idle_release_seconds)
    departures.release_departed(session, idle=idle, study_ids=[study.id])
    leases.release_expired(session, lease=timedelta(seconds=settings.lease_seconds), idle=idle)
    session.commit()
    names = dict(session.execute(select(Rater.id, Rater.name)).all())
    return {
        "completion": leases.completion(session, study),
        "flags": leases.flagged_items(session, study.id),
        "audit_log": audit.entries(session, study.id),
        "names": names,
    }


def _back(session: SessionDep, study_id: int, message: str, page: str = "") -> RedirectResponse:
    from urllib.parse import quote

    session.commit()  # before the redirect: get_db would commit only after the response is sent

    return RedirectResponse(
        f"/admin/studies/{study_id}{page}?message={quote(message)}", status_code=303
    )


@router.post("/studies/{study_id}/checkpoints", response_model=None)
def add_checkpoints(study_id: int, session: SessionDep, form: AdminForm) -> Response:
    created = studies.add_checkpoints(
        session, _study(session, study_id), _ints(form, "checkpoints")
    )
    return _back(session, study_id, f"added {created} comparisons")


@router.post("/studies/{study_id}/raters", response_model=None)
def add_rater(study_id: int, session: SessionDep, who: AdminRater, form: AdminForm) -> Response:
    ids = _ints(form, "rater")
    if not ids:
        raise ConflictError("pick a rater to add")
    moved = studies.add_rater(session, _study(session, study_id), ids[0], actor_id=who.rater_id)
    return _back(session, study_id, f"rater added; {moved} unstarted items moved to them")


@router.post("/studies/{study_id}/reassign", response_model=None)
def reassign(study_id: int, session: SessionDep, who: AdminRater, form: AdminForm) -> Response:
    ids = _ints(form, "rater")
    if not ids:
        raise ConflictError("pick a rater whose work to reassign")
    moved, stuck = transfers.reassign_rater_work(
        session, _study(session, study_id), ids[0], actor_id=who.rater_id
    )
    note = f"; {stuck} items had no eligible rater and stayed" if stuck else ""
    return _back(session, study_id, f"reassigned {moved} unfinished items{note}", "/qc")


@router.post("/studies/{study_id}/raters/{rater_id}/exclude", response_model=None)
def exclude_rater(
    study_id: int, rater_id: int, session: SessionDep, who: AdminRater, form: AdminForm
) -> Response:
    reason = str(form.get("reason") or "").strip()[:500] or None
    qc.exclude_rater(session, _study(session, study_id), rater_id, by=who.rater_id, reason=reason)
    return _back(session, study_id, "rater excluded from the statistics", "/qc")


@router.post("/studies/{study_id}/raters/{rater_id}/restore", response_model=None)
def restore_rater(
    study_id: int, rater_id: int, session: SessionDep, who: AdminRater, _form: AdminForm
) -> Response:
    qc.restore_rater(session, _study(session, study_id), rater_id, by=who.rater_id)
    return _back(session, study_id, "rater counted in the statistics again", "/qc")


@router.post("/studies/{study_id}/guidelines", response_model=None)
def set_guidelines(study_id: int, session: SessionDep, form: AdminForm) -> Response:
    text = str(form.get("guidelines") or "")
    rater_guidelines.set_guidelines(session, _study(session, study_id), text)
    return _back(session, study_id, "guidelines saved; raters see them again on their next visit")


@router.post("/studies/{study_id}/resume", response_model=None)
def resume(study_id: int, session: SessionDep, form: AdminForm) -> Response:
    """Serve a decided adaptive study again, up to a higher target."""
    raw = str(form.get("target") or "").strip()
    target = _number(form, "target", 0.0) if raw else None
    reached = allocation.resume(session, _study(session, study_id), target)
    return _back(session, study_id, f"resumed: serving again until P reaches {reached:.3f}")


@router.post("/studies/{study_id}/status", response_model=None)
def set_status(study_id: int, session: SessionDep, form: AdminForm) -> Response:
    studies.set_status(session, _study(session, study_id), str(form.get("status") or ""))
    return _back(session, study_id, f"study is now {form.get('status')}")


@router.get("/studies/{study_id}/export.{fmt}", response_model=None)
def export(
    request: Request, study_id: int, fmt: str, session: SessionDep, _who: AdminRater
) -> Response:
    if fmt not in ("csv", "jsonl"):
        raise NotFoundError("exports are .csv or .jsonl")
    study = _study(session, study_id)
    anonymise = request.query_params.get("anonymise", "0") not in ("0", "", "false")
    key = request.app.state.settings.secret_key.get_secret_value().encode()
    # The admin download is the audit copy: every live verdict, excluded raters' ones marked.
    records = exports.judgement_records(
        session, study.id, anonymise=anonymise, key=key, include_excluded=True
    )
    body = exports.judgements_csv(records) if fmt == "csv" else exports.to_jsonl(records)
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    name = f"study-{study.id}{'-anon' if anonymise else ''}.{fmt}"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
