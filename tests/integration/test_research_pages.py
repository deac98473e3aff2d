"""Research read models (hand-checked numbers) and pages: admin only, escaped, with every chart."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import plots
from app.report import build_report, render_html, render_markdown
from judging.analysis.dashboard.checkpoints import CheckpointPoint, Stat, checkpoint_points
from judging.analysis.dashboard.prompts import checkpoint_prompts, prompt_drilldown, study_prompts
from judging.analysis.dashboard.runs import get_run
from judging.analysis.dashboard.series import Series, metric_series, smooth
from judging.analysis.dashboard.studies import get_study_info
from judging.analysis.dashboard.votes import vote_rows
from judging.analysis.dashboard.win_rates import (
    _LC_CACHE,
    _RAW_CACHE,
    LC_BOOT,
    WinRates,
    alarms,
    verdicts,
    win_rates,
)
from judging.data.models import Assignment, Comparison, Judgement, Prompt, Recommendation
from judging.studies.evidence import study_lc_intervals
from judging.studies.qc import exclude_rater, restore_rater
from tests.dashboard_helpers import ResearchLab, build_research_lab, summary
from tests.judging_helpers import login

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(2)>"


def _verdict(step: int, prompt: int, rater: int) -> str:
    """Step 10: alice always prefers the checkpoint, bob the reference (win rate exactly 1/2).
    Step 20: every verdict for the checkpoint but bob's tie on prompt 0 (7.5 / 8 = 0.9375)."""
    if step == 10:
        return "checkpoint" if rater == 0 else "reference"
    return "tie" if (prompt, rater) == (0, 1) else "checkpoint"


@pytest.fixture
def research(db_session: Session, tmp_path: Path) -> ResearchLab:
    return build_research_lab(
        db_session,
        tmp_path,
        summaries={
            0: summary(0.0, 0.0, 12.0),
            10: summary(1.0, 2.0, 20.0),
            20: summary(2.0, 5.0, 40.0, truncation_rate=0.25),
        },
        verdict=_verdict,
        texts={("10", 0): HOSTILE},
        metrics={
            1: {"objective/kl": 0.1, "objective/scores": 0.5},
            2: {"objective/kl": 0.2, "objective/scores": 0.7},
            3: {"objective/kl": 0.3},
        },
    )


def _login(client: TestClient, token: str) -> None:
    login(client, token)


def _ids(research: ResearchLab) -> dict[str, int]:
    lab = research.lab
    return {
        "run": lab.base.run_id,
        "base": lab.base.id,
        "c10": lab.trained[0].id,
        "c20": lab.trained[1].id,
        "study": research.study.id,
        "prompt": lab.prompt_ids[0],
    }


# ---- read models -------------------------------------------------------------------------------


def test_vote_rows_and_win_rates_match_hand_counts(
    db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    rows = vote_rows(db_session, study_id=ids["study"])
    assert len(rows) == 16  # 2 checkpoints x 4 prompts x 2 raters
    rates = win_rates(rows, n_boot=200)
    low = rates[ids["c10"]]
    assert low.outcomes == {"checkpoint": 4, "reference": 4}
    assert low.raw is not None and low.raw.estimate == pytest.approx(0.5)
    # Every prompt has one win and one loss: each resample is exactly 1/2, a zero-width interval.
    assert (low.raw.low, low.raw.high) == (pytest.approx(0.5), pytest.approx(0.5))
    high = rates[ids["c20"]]
    assert high.outcomes == {"checkpoint": 7, "tie": 1}
    assert high.raw is not None and high.raw.estimate == pytest.approx(7.5 / 8)
    assert high.raw.low < high.raw.estimate <= high.raw.high == pytest.approx(1.0)
    assert high.lc is not None and 0.5 < high.lc.estimate < 1.0
    # The LC intervals are the study-wide ones the recommendation ranks by (the page's bootstrap
    # may start its refits from an earlier verdict set's: equal within the refit tolerance).
    page = {c: (w.lc.estimate, w.lc.low, w.lc.high) for c, w in rates.items() if w.lc}
    direct = {
        c: (i.estimate, i.low, i.high)
        for c, i in study_lc_intervals(db_session, ids["study"], n_boot=LC_BOOT).items()
    }
    assert page.keys() == direct.keys()
    for c, values in page.items():
        assert values == pytest.approx(direct[c], abs=1e-6)
    # Length difference in characters: the hostile text of step 10 on prompt 0 is longer.
    row = next(r for r in rows if r.checkpoint_id == ids["c10"] and r.prompt_id == ids["prompt"])
    assert row.length_diff == len(HOSTILE) - row.reference_chars  # type: ignore[operator]
    # Against-the-base filter keeps them (the reference is the base); the cache returns the same.
    assert len(vote_rows(db_session, against_base_only=True)) == 16
    cached = (len(_RAW_CACHE), len(_LC_CACHE))
    assert win_rates(rows, n_boot=200)[ids["c20"]] == high
    assert (len(_RAW_CACHE), len(_LC_CACHE)) == cached


def test_verdicts_are_memoised_until_a_verdict_changes(
    db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    first = verdicts(db_session, study_id=ids["study"])
    assert len(first.rows) == 16 and verdicts(db_session, study_id=ids["study"]) is first
    # An undo marks a judgement withdrawn (an UPDATE, the row stays): the fingerprint changes
    # and the numbers are recomputed without it.
    # Bob's verdict, so that excluding bob below leaves alice's 8 whatever order they judged in.
    bob = research.lab.raters[1].id
    undone = db_session.scalars(
        select(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .where(Assignment.rater_id == bob)
        .order_by(Judgement.id.desc())
        .limit(1)
    ).one()
    undone.withdrawn_at = datetime.now(UTC)
    db_session.flush()
    second = verdicts(db_session, study_id=ids["study"])
    assert second is not first and len(second.rows) == 15
    assert sum(w.n_votes for w in second.rates.values()) == 15
    # Excluding a rater leaves their verdicts out; restoring counts them again.
    lab = research.lab
    exclude_rater(db_session, research.study, bob, by=lab.raters[2].id)
    db_session.flush()
    third = verdicts(db_session, study_id=ids["study"])
    assert {r.rater_id for r in third.rows} == {lab.raters[0].id} and len(third.rows) == 8
    restore_rater(db_session, research.study, bob, by=lab.raters[2].id)
    db_session.flush()
    assert len(verdicts(db_session, study_id=ids["study"]).rows) == 15
    assert len(vote_rows(db_session, study_id=ids["study"])) == 15


def test_an_undo_and_an_exclusion_change_the_study_page(
    client: TestClient, db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    _login(client, research.admin_token)
    url = f"/research/studies/{ids['study']}"
    assert "0.938 [" in client.get(url).text  # page memoised on the verdicts
    # Undo bob's tie on step 20: 7 wins out of 7.
    tie = db_session.scalars(
        select(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.checkpoint_id == ids["c20"], Judgement.choice == "tie")
    ).one()
    tie.withdrawn_at = datetime.now(UTC)
    db_session.flush()
    page = client.get(url).text
    assert "0.938 [" not in page and "1.000 [" in page
    assert "0.500 [0.500, 0.500]" in page
    # Excluding bob (who always preferred the reference on step 10) moves step 10 to 1.000 too.
    exclude_rater(
        db_session, research.study, research.lab.raters[1].id, by=research.lab.raters[2].id
    )
    db_session.flush()
    assert "0.500 [0.500, 0.500]" not in client.get(url).text
    assert verdicts(db_session, study_id=ids["study"]).rates[ids["c10"]].raw.estimate == 1.0  # type: ignore[union-attr]


def test_checkpoint_points_metric_series_and_smoothing(
    db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    points = {p.id: p for p in checkpoint_points(db_session, run_ids=[ids["run"]])}
    assert [points[i].step for i in (ids["base"], ids["c10"], ids["c20"])] == [0, 10, 20]
    assert points[ids["c10"]].stat("reward") == Stat(1.0, 0.9, 1.1)
    assert points[ids["c20"]].value("truncation_rate") == 0.25
    assert points[ids["c20"]].label == "ppo-research@20"
    series = metric_series(db_session, [ids["run"]])
    assert series[ids["run"]]["objective/kl"] == Series([1, 2, 3], [0.1, 0.2, 0.3])
    assert series[ids["run"]]["objective/scores"].steps == [1, 2]
    assert smooth([0.0, 1.0], 0.5) == pytest.approx([0.0, 0.5 / 0.75])
    assert smooth([3.0, 3.0, 3.0]) == pytest.approx([3.0, 3.0, 3.0])
    run = get_run(db_session, ids["run"])
    assert (run.kl_coef, run.checkpoints, run.compute_spent_seconds) == (0.05, 2, 123.0)


def test_drilldown_and_prompt_tallies(db_session: Session, research: ResearchLab) -> None:
    ids = _ids(research)
    drill = prompt_drilldown(db_session, ids["prompt"])
    responses = drill.runs["ppo-research"]
    assert [r.step for r in responses] == [0, 10, 20]
    assert responses[1].text == HOSTILE
    assert sorted(v.winner for v in responses[1].verdicts) == ["checkpoint", "reference"]
    assert sorted(v.winner for v in responses[2].verdicts) == ["checkpoint", "tie"]
    assert responses[0].verdicts == []  # the base is the reference, never the candidate
    tallies = {t.prompt_id: t for t in checkpoint_prompts(db_session, ids["c20"])}
    assert (tallies[ids["prompt"]].wins, tallies[ids["prompt"]].ties) == (1, 1)
    info = get_study_info(db_session, ids["study"])
    study_tally = study_prompts(db_session, info, vote_rows(db_session, study_id=info.id))
    assert (study_tally[0].wins, study_tally[0].losses, study_tally[0].ties) == (2, 1, 1)


# ---- figures -----------------------------------------------------------------------------------


def test_figures_carry_checkpoint_links_and_the_gao_fit(
    db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    report = build_report(db_session, ids["study"])
    charts = {c.id: c.figure for c in report.charts}
    assert {"win-rate", "rm-score", "kl", "length", "truncation", "repetition", "tics"} <= set(
        charts
    )
    raw = charts["win-rate"]["data"][0]
    assert raw["x"] == [10, 20] and raw["y"] == pytest.approx([0.5, 0.9375])
    assert raw["customdata"][0] == [f"/research/checkpoints/{ids['c10']}", "ppo-research@10", 10]
    json.dumps(report.charts[0].figure, allow_nan=False)  # plain JSON, no NaN
    # Two judged points are too few for Gao's curve; three on a rise-and-fall give a peak.
    assert "fit d(a - b log d)" not in json.dumps(charts["wr-sqrt-kl"])
    points = [
        CheckpointPoint(i, 1, "r", "ppo", 10 * i, "trained", "evaluated", None, None, {},
                             {"kl_k3": kl}, [], 1)
        for i, kl in ((1, 1.0), (2, 4.0), (3, 9.0))
    ]  # fmt: skip
    rates = {
        i: WinRates(i, plots.Interval(wr, wr - 0.1, wr + 0.1, 4, 8), None)
        for i, wr in ((1, 0.60), (2, 0.65), (3, 0.55))
    }
    fit = plots.fit_for(points, rates)
    assert fit is not None
    figure = plots.win_rate_vs_kl_figure(points, rates, sqrt_axis=True, fit=fit)
    assert figure is not None
    names = [t["name"] for t in figure["data"]]
    assert names == ["r", "fit d(a - b log d)", "predicted peak"]
    assert figure["data"][0]["x"] == [1.0, 2.0, 3.0]


def test_divergence_alarm_marks_reward_up_humans_down() -> None:
    points = [
        CheckpointPoint(i, 1, "r", "ppo", 10 * i, "trained", "evaluated", None, None, {},
                             {"reward": {"mean": rw, "ci_low": rw - 0.1, "ci_high": rw + 0.1}},
                             [], 1)
        for i, rw in ((1, 1.0), (2, 2.0), (3, 2.05))
    ]  # fmt: skip
    rates = {
        i: WinRates(i, plots.Interval(wr, wr - 0.1, wr + 0.1, 4, 8), None)
        for i, wr in ((1, 0.8), (2, 0.4), (3, 0.1))
    }
    raised = alarms(points, rates)
    # 10 -> 20: reward up and humans down, both beyond their intervals; 20 -> 30: reward flat.
    assert [(a.before.step, a.after.step) for a in raised] == [(10, 20)]
    assert raised[0].text.startswith("r@10 → r@20: reward up, humans down (RM +1.000")
    figure = plots.rm_vs_win_rate_figure(points, rates, raised)
    assert figure is not None
    segment = figure["data"][-1]
    assert segment["name"] == "divergence alarm"
    assert segment["x"] == [1.0, 2.0, None] and segment["y"] == [0.8, 0.4, None]


# ---- pages -------------------------------------------------------------------------------------


def _pages(ids: dict[str, int]) -> list[str]:
    return [
        "/research",
        f"/research?run={ids['run']}",
        f"/research/runs/{ids['run']}",
        f"/research/studies/{ids['study']}",
        f"/research/checkpoints/{ids['c10']}",
        f"/research/prompts/{ids['prompt']}",
        f"/research/studies/{ids['study']}/report.md",
        f"/research/studies/{ids['study']}/report.html",
    ]


def test_pages_are_for_admins_only(client: TestClient, research: ResearchLab) -> None:
    pages = _pages(_ids(research))
    for url in pages:  # anonymous: sent to the invite notice
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303, url
        assert response.headers["location"] == "/need-invite"
    _login(client, research.rater_token)
    for url in pages:
        assert client.get(url).status_code == 403, url
    _login(client, research.admin_token)
    for url in pages:
        assert client.get(url).status_code == 200, url


def test_admin_pages_show_numbers_charts_and_escape_hostile_text(
    client: TestClient, db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    prompt = db_session.get(Prompt, ids["prompt"])
    assert prompt is not None
    prompt.text = f"Prompt {HOSTILE}"
    judgement = db_session.scalars(select(Judgement)).first()
    assert judgement is not None
    judgement.rationale = f"because {HOSTILE}"
    db_session.flush()
    _login(client, research.admin_token)
    study = client.get(f"/research/studies/{ids['study']}").text
    assert "0.938 [" in study and "0.500 [0.500, 0.500]" in study
    for chart in ("win-rate", "rm-score", "kl", "length", "repetition", "wr-kl", "rm-vs-wr"):
        assert f'id="figure-{chart}"' in study
    assert 'href="/research/studies/{}/report.html"'.format(ids["study"]) in study
    # No inline script on the pages: figures are JSON data blocks drawn by static/charts.js.
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", study)
    for url in (f"/research/prompts/{ids['prompt']}", f"/research/studies/{ids['study']}",
                f"/research/checkpoints/{ids['c10']}"):  # fmt: skip
        html = client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
    drill = client.get(f"/research/prompts/{ids['prompt']}").text
    assert "&lt;script&gt;alert(" in drill and "because &lt;script&gt;" in drill
    assert "ppo-research@10" in drill and "ppo-research@20" in drill
    # htmx asks for the charts block only.
    partial = client.get(f"/research?run={ids['run']}", headers={"HX-Request": "true"}).text
    assert partial.lstrip().startswith('<div id="charts"') and "<html" not in partial


def test_study_page_shows_the_stored_recommendation(
    client: TestClient, db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    db_session.add(
        Recommendation(
            study_id=ids["study"],
            checkpoint_id=ids["c20"],
            method="lc-win-rate",
            rationale=f"Chose step 20.\nIt beats step 10 {HOSTILE}.",
            evidence={},
        )
    )
    db_session.flush()
    _login(client, research.admin_token)
    page = client.get(f"/research/studies/{ids['study']}").text
    assert "Recommended:" in page and "ppo-research@20" in page and "Chose step 20." in page
    assert "It beats step 10 &lt;script&gt;" in page
    run_page = client.get(f"/research/runs/{ids['run']}").text
    assert 'class="recommended"' in run_page and "It beats step 10 &lt;script&gt;" in run_page
    markdown = client.get(f"/research/studies/{ids['study']}/report.md").text
    assert "**ppo-research@20** (lc-win-rate)" in markdown
    # The HTML report inlines its scripts (an offline file): downloaded, never shown as a page.
    report = client.get(f"/research/studies/{ids['study']}/report.html")
    assert report.headers["content-disposition"].startswith("attachment;")
    assert "It beats step 10 &lt;script&gt;" in markdown


def test_unknown_ids_are_404(client: TestClient, research: ResearchLab) -> None:
    _login(client, research.admin_token)
    for url in ("/research/runs/999999", "/research/studies/999999",
                "/research/checkpoints/999999", "/research/prompts/999999",
                f"/research/studies/{research.study.id}/report.pdf"):  # fmt: skip
        assert client.get(url).status_code == 404, url


# ---- the report --------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "data", "action")]


def test_report_markdown_tables_and_self_contained_html(
    db_session: Session, research: ResearchLab
) -> None:
    ids = _ids(research)
    report = build_report(db_session, ids["study"])
    markdown = render_markdown(report)
    assert "## Human win rate vs reference" in markdown
    assert "| ppo-research@20 | 20 | 8 | 0.938 [" in markdown
    assert "## Reward and KL (held-out)" in markdown and "## Compute cost per run" in markdown
    assert "## Divergence alarms\n\nNone: " in markdown  # reward and humans both went up
    assert "| ppo-research@base | ppo-research | 0 | 0.000 [-0.100, 0.100] |" in markdown
    assert "| ppo-research | PPO | running | 2 | cpu | 2.0 min | max_steps=20 |" in markdown
    html = render_html(report)
    links = _Links()
    links.feed(html)
    assert links.urls == [], f"external references in the report: {links.urls[:5]}"
    assert "link" not in links.tags
    assert "Plotly.newPlot" in html and len(html) > 4_000_000  # plotly.js is inlined
    assert "<script>alert" not in html
    figures = re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    assert figures is not None and "win-rate" in json.loads(figures.group(1))


def test_a_new_verdict_changes_the_lc_numbers_and_the_page_matches_the_recommendation(
    db_session: Session, research: ResearchLab
) -> None:
    # The page memoises LC intervals on the exact verdicts: after a change it must show new
    # numbers, equal to the recommendation's own computation.
    ids = _ids(research)
    before = verdicts(db_session, study_id=ids["study"]).rates
    undone = db_session.scalars(
        select(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.checkpoint_id == ids["c20"], Judgement.choice == "tie")
    ).one()
    undone.withdrawn_at = datetime.now(UTC)
    db_session.flush()
    after = verdicts(db_session, study_id=ids["study"])
    cold = study_lc_intervals(db_session, ids["study"], n_boot=LC_BOOT)
    assert after.rates[ids["c20"]].lc != before[ids["c20"]].lc
    for checkpoint_id, interval in cold.items():
        shown = after.rates[checkpoint_id].lc
        assert shown is not None
        assert shown.estimate == pytest.approx(interval.estimate, abs=1e-9)
        assert shown.low == pytest.approx(interval.low, abs=1e-6)
        assert shown.high == pytest.approx(interval.high, abs=1e-6)


def test_research_pages_work_on_the_embedded_sqlite(tmp_path: Path) -> None:
    """`make demo` runs on SQLite by default: the study page and its report failed there with
    "no such function: greatest" (a PostgreSQL-only function in the verdicts' fingerprint)."""
    from sqlalchemy.orm import sessionmaker

    from judging.data.db import make_engine
    from judging.data.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        lab = build_research_lab(
            session,
            tmp_path,
            summaries={0: summary(0.0, 0.0, 12.0), 10: summary(1.0, 2.0, 20.0)},
            verdict=_verdict,
        )
        session.commit()
        report = build_report(session, lab.study.id, refresh=True)
        assert "Recommendation" in render_markdown(report)
        rates = verdicts(session, study_id=lab.study.id).rates
        assert rates and all(w.raw is not None for w in rates.values())
    engine.dispose()
