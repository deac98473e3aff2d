"""Research pages (admins only): runs overlaid, a run, a study's results, a checkpoint, a prompt.

Figures are built server-side (app/plots.py) and shipped as JSON data blocks that the static
charts.js renders, so the pages need no inline script. Run selection is a plain GET form of
checkboxes (`?run=1&run=3`), so every view is a shareable URL and works without htmx.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from app import plots
from app.auth import AdminForm, AdminRater
from app.deps import SessionDep
from app.render import render
from app.report import build_report, render_html, render_markdown
from judging.analysis.dashboard.checkpoints import (
    HELDOUT_METRICS,
    CheckpointPoint,
    checkpoint_points,
    get_checkpoint_point,
)
from judging.analysis.dashboard.prompts import checkpoint_prompts, prompt_drilldown, study_prompts
from judging.analysis.dashboard.runs import RunSummary, get_run, list_runs
from judging.analysis.dashboard.series import metric_series
from judging.analysis.dashboard.studies import get_study_info, latest_recommendation, list_studies
from judging.analysis.dashboard.win_rates import WinRates, alarms, verdicts
from judging.analysis.recommendation import refresh_recommendation
from judging.errors import NotFoundError

router = APIRouter(prefix="/research")


def _base_context(who: AdminRater) -> dict[str, Any]:
    return {"who": who, "csrf": who.csrf}


def _charts(
    session: Session,
    runs: list[RunSummary],
    points: list[CheckpointPoint],
    rates: dict[int, WinRates],
) -> list[plots.Chart]:
    series = metric_series(session, [r.id for r in runs])
    return plots.run_charts(runs, points, series, rates, fit=plots.fit_for(points, rates))


@router.get("", response_class=HTMLResponse)
def overview(
    request: Request,
    session: SessionDep,
    who: AdminRater,
    run: list[int] | None = Query(default=None),
) -> HTMLResponse:
    all_runs = list_runs(session)
    chosen = set(run) if run else {r.id for r in all_runs[:4]}
    runs = [r for r in all_runs if r.id in chosen]
    points = checkpoint_points(session, run_ids=[r.id for r in runs])
    judged = verdicts(session, checkpoint_ids=[p.id for p in points], against_base_only=True)
    context = {
        **_base_context(who),
        "all_runs": all_runs,
        "chosen": chosen,
        "runs": runs,
        "charts": _charts(session, runs, points, judged.rates),
        "studies": list_studies(session, [p.id for p in points]),
    }
    return render(request, "research/overview.html", context, block="charts")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int, session: SessionDep, who: AdminRater) -> HTMLResponse:
    run = get_run(session, run_id)
    points = checkpoint_points(session, run_ids=[run.id])
    judged = verdicts(session, checkpoint_ids=[p.id for p in points], against_base_only=True)
    context = {
        **_base_context(who),
        "run": run,
        "points": points,
        "rates": judged.rates,
        "alarms": alarms(points, judged.rates),
        "charts": _charts(session, [run], points, judged.rates),
        "studies": [
            (s, latest_recommendation(session, s.id))
            for s in list_studies(session, [p.id for p in points])
        ],
    }
    return render(request, "research/run.html", context, block="charts")


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(
    request: Request, study_id: int, session: SessionDep, who: AdminRater
) -> HTMLResponse:
    report = build_report(session, study_id)
    context = {
        **_base_context(who),
        "report": report,
        "study": report.study,
        "charts": report.charts,
        "prompts": study_prompts(session, report.study, report.votes),
        "message": request.query_params.get("message"),
    }
    return render(request, "research/study.html", context, block="charts")


@router.get("/studies/{study_id}/report.{fmt}", response_model=None)
def study_report(study_id: int, fmt: str, session: SessionDep, _who: AdminRater) -> Response:
    if fmt not in ("md", "html"):
        raise NotFoundError("reports are .md or .html")
    report = build_report(session, study_id, refresh=True)
    if fmt == "md":
        body, media = render_markdown(report), "text/markdown; charset=utf-8"
    else:
        body, media = render_html(report), "text/html; charset=utf-8"
    name = f"study-{study_id}-report.{fmt}"
    return Response(
        body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.post("/studies/{study_id}/recommendation", response_model=None)
def recompute(study_id: int, session: SessionDep, _form: AdminForm) -> Response:
    """Recompute the recommendation now (a new row only if the verdicts changed)."""
    get_study_info(session, study_id)
    result = refresh_recommendation(session, study_id)
    session.commit()  # before the redirect: get_db would commit only after the response is sent
    if result.stored is None:
        why = result.explanation[-1] if result.explanation else "no verdicts yet"
        note = f"no recommendation yet: {why}"
    else:
        note = "recomputed" if result.computed else "unchanged: no new verdicts since"
    return RedirectResponse(
        f"/research/studies/{study_id}?message={quote(note)}#recommendation", status_code=303
    )


@router.get("/checkpoints/{checkpoint_id}", response_class=HTMLResponse)
def checkpoint_page(
    request: Request, checkpoint_id: int, session: SessionDep, who: AdminRater
) -> HTMLResponse:
    point = get_checkpoint_point(session, checkpoint_id)
    studies = list_studies(session, [checkpoint_id])
    # Each study's own numbers (its LC shares one length slope across its checkpoints).
    rates = [
        (study, found)
        for study in studies
        if (found := verdicts(session, study_id=study.id).rates.get(checkpoint_id))
    ]
    context = {
        **_base_context(who),
        "point": point,
        "metrics": [(label, point.stat(key)) for key, label in HELDOUT_METRICS.items()],
        "rates": rates,
        "studies": studies,
        "prompts": checkpoint_prompts(session, checkpoint_id),
    }
    return render(request, "research/checkpoint.html", context, block="prompts")


@router.get("/prompts/{prompt_id}", response_class=HTMLResponse)
def prompt_page(
    request: Request,
    prompt_id: int,
    session: SessionDep,
    who: AdminRater,
    run: list[int] | None = Query(default=None),
) -> HTMLResponse:
    context = {
        **_base_context(who),
        "drill": prompt_drilldown(session, prompt_id, run_ids=run or None),
    }
    return render(request, "research/prompt.html", context)
