"""Research pages in Chromium: every chart renders, no console errors, clicks open checkpoints,
the run picker swaps charts with htmx, and a rater can open none of the pages."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from judging.data.models import Recommendation
from judging.settings import PROJECT_ROOT
from tests.dashboard_helpers import ResearchLab, add_run, build_research_lab, summary
from tests.e2e.conftest import sign_in

SCREENSHOTS = PROJECT_ROOT / "screenshots"
HOSTILE = "<script>alert('xss')</script><img src=x onerror=alert(1)>"
STEPS = (10, 20, 30, 40)


def _verdict(step: int, prompt: int, rater: int) -> str:
    # Humans like the run up to step 20-30, then less (reward hacking); seeded, reproducible.
    p = {10: 0.6, 20: 0.72, 30: 0.66, 40: 0.45}.get(step, 0.5)
    draw = random.Random(f"{step}/{prompt}/{rater}").random()
    return "tie" if draw > 0.92 else "checkpoint" if draw < p else "reference"


def _metrics(kl_coef: float) -> dict[int, dict[str, float]]:
    rng = random.Random(kl_coef)
    return {
        s: {
            "objective/scores": 0.03 * s / (1 + kl_coef * 10) + rng.gauss(0, 0.05),
            "objective/kl": 0.08 * s / (1 + kl_coef * 10),
            "objective/kl_coef": kl_coef,
            "response_length": 40 + s / (1 + kl_coef * 10),
        }
        for s in range(1, 41)
    }


def _summaries(scale: float) -> dict[int, dict[str, object]]:
    return {
        0: summary(0.0, 0.0, 30.0),
        **{
            s: summary(
                scale * s / 20,
                scale * s / 8,
                30.0 + scale * s,
                truncation_rate=0.01 * s / 10,
                seq_rep_4=0.02 * s / 10,
                refusal_rate=0.05,
                sycophancy_rate=0.01 * s / 10,
                bullets_rate=0.1 * s / 10,
            )
            for s in STEPS
        },
    }


@pytest.fixture
def research(committed_session: Session, tmp_path: Path) -> ResearchLab:
    lab = build_research_lab(
        committed_session,
        tmp_path,
        prompts=12,
        steps=STEPS,
        summaries=_summaries(1.0),
        verdict=_verdict,
        texts={("20", 0): HOSTILE},
        run_name="ppo-kl0.05",
        kl_coef=0.05,
        metrics=_metrics(0.05),
    )
    add_run(
        committed_session,
        tmp_path,
        lab,
        name="ppo-kl0.2",
        kl_coef=0.2,
        steps=STEPS,
        summaries=_summaries(0.5),
        metrics=_metrics(0.2),
        verdict=lambda s, p, r: _verdict(s // 2 + 5, p, r),
    )
    add_run(
        committed_session,
        tmp_path,
        lab,
        name="dpo-ref",
        algorithm="dpo",
        steps=(50,),
        summaries={0: summary(0.0, 0.0, 30.0), 50: summary(0.6, 1.5, 45.0)},
    )
    committed_session.add(
        Recommendation(
            study_id=lab.study.id,
            checkpoint_id=lab.lab.trained[1].id,
            method="lc-win-rate",
            rationale="Chose ppo-kl0.05@20: best LC win rate within the KL budget.\n"
            "The highest-reward checkpoint (step 40) grew 2.0x longer and humans prefer it less.",
            evidence={},
        )
    )
    committed_session.commit()
    return lab


def _watch(page: Page) -> list[str]:
    errors: list[str] = []
    page.on(
        "console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    return errors


def _all_charts_rendered(page: Page) -> int:
    charts = page.locator(".chart[data-figure]")
    count = charts.count()
    expect(page.locator('.chart[data-rendered="1"]')).to_have_count(count, timeout=20_000)
    expect(page.locator(".chart .main-svg").first).to_be_visible()
    return count


def test_every_chart_renders_and_clicks_open_checkpoints(
    live_server: str, research: ResearchLab, page: Page, pg_engine: Engine
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, live_server, research.admin_token)
    errors = _watch(page)  # from here on: the research pages only
    lab = research.lab
    run_id, study_id = lab.base.run_id, research.study.id
    pages = {
        "research-overview": "/research",
        "research-run": f"/research/runs/{run_id}",
        "research-study": f"/research/studies/{study_id}",
    }
    counts = {}
    for name, path in pages.items():
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 200
        counts[name] = _all_charts_rendered(page)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        if name == "research-overview":
            # Three runs overlaid on shared axes: two PPO curves and the DPO reference point.
            names = page.evaluate(
                "() => document.getElementById('chart-length').data.map(t => t.name)"
            )
            assert names == ["dpo-ref", "ppo-kl0.05 (KL coef 0.05)", "ppo-kl0.2 (KL coef 0.2)"]
    # Win rate (raw + LC), RM, KL, length, truncation, repetition, tics, refusals, the two KL
    # scatter plots and RM vs win rate: twelve figures minus the evaluation RM we do not have.
    assert counts["research-overview"] == 11, counts
    assert counts["research-study"] == 11, counts
    # Gao's fit appears on the study page (four judged checkpoints).
    traces = page.evaluate(
        "() => document.getElementById('chart-wr-sqrt-kl').data.map(t => t.name)"
    )
    assert "fit d(a - b log d)" in traces
    # The recommendation is on the study page, and the report downloads from it.
    expect(page.locator("#recommendation")).to_contain_text("Recommended: ppo-kl0.05@20")
    with page.expect_download() as download:
        page.locator("#report-md").click()
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert markdown.startswith("# Study report: ppo-kl0.05-study")
    assert "| ppo-kl0.05@40 | 40 | 24 |" in markdown
    # Clicking a point opens its checkpoint page (the handler reads customdata[0]).
    page.evaluate(
        """() => { const el = document.getElementById('chart-win-rate');
                   const t = el.data[0];
                   el.emit('plotly_click', {points: [{customdata: t.customdata[1]}]}); }"""
    )
    expect(page).to_have_url(f"{live_server}/research/checkpoints/{lab.trained[1].id}")
    expect(page.locator("h1")).to_contain_text("ppo-kl0.05@20")
    page.screenshot(path=str(SCREENSHOTS / "research-checkpoint.png"), full_page=True)
    page.goto(f"{live_server}/research/prompts/{lab.prompt_ids[0]}")
    expect(page.locator(f"#ckpt-{lab.trained[1].id} pre.text")).to_have_text(HOSTILE)
    page.screenshot(path=str(SCREENSHOTS / "research-prompt.png"), full_page=True)
    # The run picker: untick every run but the DPO one; htmx swaps the charts in place.
    page.goto(f"{live_server}/research")
    _all_charts_rendered(page)
    for box in page.locator('input[name="run"]').all():
        if box.is_checked():
            box.uncheck()
    dpo = page.locator("label", has_text="dpo-ref").locator("input")
    dpo.check()
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(f"{live_server}/research?run={dpo.get_attribute('value')}")
    expect(page.locator(".chart[data-figure]")).not_to_have_count(11)
    _all_charts_rendered(page)
    assert errors == [], errors


def test_a_rater_cannot_open_any_research_page(
    live_server: str, research: ResearchLab, page: Page
) -> None:
    lab = research.lab
    paths = [
        "/research",
        f"/research/runs/{lab.base.run_id}",
        f"/research/studies/{research.study.id}",
        f"/research/checkpoints/{lab.trained[0].id}",
        f"/research/prompts/{lab.prompt_ids[0]}",
        f"/research/studies/{research.study.id}/report.html",
    ]
    for path in paths:  # not signed in: sent to the invite notice
        page.goto(f"{live_server}{path}")
        expect(page).to_have_url(f"{live_server}/need-invite")
    sign_in(page, live_server, research.rater_token)
    for path in paths:
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 403, path
        expect(page.locator("body")).to_contain_text("admins only")
        assert page.locator(".chart").count() == 0
    assert page.locator('a[href="/research"]').count() == 0
