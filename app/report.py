"""A study's report: the same read models and figures as the study page, as Markdown or as one
self-contained HTML file (plotly.js, figures and styles inlined; nothing fetched from anywhere).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import plots
from app.render import templates
from judging import assets
from judging.analysis.dashboard.checkpoints import (
    HELDOUT_METRICS,
    CheckpointPoint,
    Stat,
    checkpoint_points,
)
from judging.analysis.dashboard.runs import RunSummary, list_runs
from judging.analysis.dashboard.series import metric_series
from judging.analysis.dashboard.studies import (
    RecommendationView,
    StudyInfo,
    get_study_info,
    latest_recommendation,
)
from judging.analysis.dashboard.votes import VoteRow
from judging.analysis.dashboard.win_rates import Alarm, WinRates, alarms, verdicts
from judging.analysis.gold_curve import gold_rates
from judging.analysis.recommendation import refresh_recommendation
from judging.data.models import Checkpoint, TrainingRun
from judging.stats.winrate import Interval

PLOTLY_JS = assets.static_dir() / "vendor" / "plotly.min.js"
CSS = assets.static_dir() / "app.css"

# Metric tables of the report: title -> held-out summary keys.
TABLES: dict[str, tuple[str, ...]] = {
    "Reward and KL": ("reward", "eval_reward", "kl_k3", "kl_k1"),
    "Length": ("length_tokens", "length_growth", "truncation_rate"),
    "Repetition and diversity": ("seq_rep_4", "distinct_1", "distinct_2", "self_bleu"),
    "Formatting tics": ("headers_rate", "bullets_rate", "bold_rate", "emoji_rate"),
    "Refusals and sycophancy": ("refusal_rate", "sycophancy_rate"),
}


@dataclass(frozen=True)
class StudyReport:
    study: StudyInfo
    runs: list[RunSummary]
    points: list[CheckpointPoint]
    """Base, every judged checkpoint, the rest of their runs, and SFT/DPO runs on the same base."""
    votes: list[VoteRow]
    rates: dict[int, WinRates]
    charts: list[plots.Chart]
    recommendation: RecommendationView | None
    generated_at: datetime
    alarms: list[Alarm]
    gold: dict[int, Interval]
    """Gold preference win rate per checkpoint (simulated studies only; empty otherwise)."""

    @property
    def judged(self) -> set[int]:
        return set(self.study.checkpoint_ids)


def _run_ids(session: Session, study: StudyInfo) -> list[int]:
    """Runs of the judged checkpoints and the reference, plus SFT/DPO runs on the same base."""
    ids = [study.reference_checkpoint_id, *study.checkpoint_ids]
    runs = set(session.scalars(select(Checkpoint.run_id).where(Checkpoint.id.in_(ids))))
    bases = set(session.scalars(select(TrainingRun.base_model).where(TrainingRun.id.in_(runs))))
    references = session.scalars(
        select(TrainingRun.id).where(
            TrainingRun.algorithm.in_(("sft", "dpo")), TrainingRun.base_model.in_(bases)
        )
    )
    return sorted(runs | set(references))


def _sureness_lines(evidence: dict[str, Any]) -> list[str]:
    """P(within delta of the best) and expected regret, when the stored rule states them."""
    p, regret, delta = (evidence.get(k) for k in ("p_within_delta", "expected_regret", "delta"))
    if p is None or regret is None or delta is None:
        return []
    return [
        f"P(within {delta:.2f} of the best) {'> 0.99' if p > 0.99 else f'= {p:.2f}'}; "
        f"expected regret {regret:.3f} "
        "win-rate points (joint prompt resamples).",
        "",
    ]


def build_report(session: Session, study_id: int, *, refresh: bool = False) -> StudyReport:
    """Everything the study page and its reports show; `refresh` first recomputes the stored
    recommendation if verdicts changed since (a new row; the history stays)."""
    study = get_study_info(session, study_id)
    if refresh:
        refresh_recommendation(session, study.id)
    runs = list_runs(session, _run_ids(session, study))
    points = checkpoint_points(
        session, run_ids=[r.id for r in runs], prompt_set_id=study.prompt_set_id
    )
    judged = verdicts(session, study_id=study.id)
    votes, rates = judged.rows, judged.rates
    series = metric_series(session, [r.id for r in runs])
    fit = plots.fit_for(points, rates)
    gold = gold_rates(session, study.id)
    return StudyReport(
        study=study,
        runs=runs,
        points=points,
        votes=votes,
        rates=rates,
        charts=plots.run_charts(runs, points, series, rates, fit=fit, gold=gold),
        recommendation=latest_recommendation(session, study.id),
        generated_at=datetime.now(UTC),
        alarms=alarms(points, rates),
        gold=gold,
    )


# ---- formatting ---------------------------------------------------------------------------------


def fmt_stat(stat: Stat | None, digits: int = 3) -> str:
    if stat is None:
        return "–"
    text = f"{stat.value:.{digits}f}"
    if stat.low is not None and stat.high is not None:
        text += f" [{stat.low:.{digits}f}, {stat.high:.{digits}f}]"
    return text


def fmt_interval(interval: object) -> str:
    from judging.stats.winrate import Interval

    if not isinstance(interval, Interval):
        return "–"
    return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def fmt_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _md_cell(text: object) -> str:
    """A Markdown table cell: pipes and HTML brackets escaped, newlines flattened."""
    raw = str(text).replace("\n", " ").replace("|", "\\|")
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    out.append("|" + "---|" * len(header))
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return out


def human_rows(report: StudyReport) -> list[list[str]]:
    rows = []
    for p in report.points:
        wr = report.rates.get(p.id)
        if p.id not in report.judged:
            continue
        rows.append(
            [
                p.label,
                str(p.step),
                str(wr.n_votes if wr else 0),
                fmt_interval(wr.raw if wr else None),
                fmt_interval(wr.lc if wr else None),
                *([fmt_interval(report.gold.get(p.id))] if report.gold else []),
                ", ".join(p.flags) or "–",
            ]
        )
    return rows


HUMAN_HEADER = (
    "Checkpoint",
    "Step",
    "Verdicts",
    "Win rate [95% CI]",
    "LC win rate [95% CI]",
    "Flags",
)
GOLD_HEADER = "Gold win rate [95% CI]"
GOLD_NOTE = (
    "Gold win rate: how often the simulation's gold preference itself (noise-free) prefers the"
    " checkpoint's response on the same pairs; simulated raters' own rates lie nearer 0.5."
)


def human_header_for(report: StudyReport) -> tuple[str, ...]:
    """The human table's columns; a simulated study adds the gold win rate before the flags."""
    if not report.gold:
        return HUMAN_HEADER
    return (*HUMAN_HEADER[:-1], GOLD_HEADER, HUMAN_HEADER[-1])


def metric_header(keys: Sequence[str]) -> list[str]:
    return ["Checkpoint", "Run", "Step", *(HELDOUT_METRICS.get(k, k) for k in keys)]


def metric_rows(report: StudyReport, keys: Sequence[str]) -> list[list[str]]:
    return [
        [p.label, p.run_name, str(p.step), *(fmt_stat(p.stat(k)) for k in keys)]
        for p in report.points
    ]


def compute_rows(report: StudyReport) -> list[list[str]]:
    return [
        [
            r.name,
            r.algorithm.upper(),
            r.status,
            str(r.checkpoints),
            r.device or "–",
            fmt_seconds(r.compute_spent_seconds),
            ", ".join(f"{k}={v}" for k, v in sorted(r.compute_budget.items())) or "–",
        ]
        for r in report.runs
    ]


COMPUTE_HEADER = ("Run", "Algorithm", "Status", "Checkpoints", "Device", "Compute spent", "Budget")


def table_keys(report: StudyReport) -> dict[str, tuple[str, ...]]:
    """The metric tables, leaving out metrics no checkpoint has (e.g. no evaluation RM)."""
    out = {}
    for title, keys in TABLES.items():
        present = tuple(k for k in keys if any(p.stat(k) for p in report.points))
        if present:
            out[title] = present
    return out


def render_markdown(report: StudyReport) -> str:
    s = report.study
    lines = [
        f"# Study report: {_md_cell(s.name)}",
        "",
        f"Reference: **{_md_cell(s.reference_label)}**"
        f" · prompt set **{_md_cell(s.prompt_set_name)}**"
        f" · {len(s.checkpoint_ids)} checkpoints judged · {len(report.votes)} verdicts"
        f" · generated {report.generated_at:%Y-%m-%d %H:%M} UTC",
        "",
        "## Recommendation",
        "",
    ]
    rec = report.recommendation
    if rec is None:
        lines.append("No recommendation has been computed for this study yet.")
    else:
        lines += [f"**{_md_cell(rec.checkpoint_label)}** ({_md_cell(rec.method)})", ""]
        lines += _sureness_lines(rec.evidence)
        lines += [_md_cell(line) if line.strip() else "" for line in rec.rationale.splitlines()]
    lines += ["", "## Divergence alarms", ""]
    lines += [f"- {_md_cell(a.text)}" for a in report.alarms] or [
        "None: between consecutive checkpoints, the RM score and the human win rate never moved"
        " in opposite directions beyond both 95% intervals."
    ]
    lines += ["", "## Human win rate vs reference", ""]
    lines += _md_table(human_header_for(report), human_rows(report))
    lines += [
        "",
        "Intervals: 95% percentile bootstrap over prompts (clustered by prompt);"
        " ties count one half.",
    ]
    lines += ["", GOLD_NOTE] if report.gold else []
    for title, keys in table_keys(report).items():
        lines += ["", f"## {title} (held-out)", ""]
        lines += _md_table(metric_header(keys), metric_rows(report, keys))
    lines += ["", "## Compute cost per run", ""]
    lines += _md_table(COMPUTE_HEADER, compute_rows(report))
    return "\n".join(lines) + "\n"


def render_html(report: StudyReport) -> str:
    """One HTML file: styles, plotly.js and every figure inline; no external src or href."""
    figures = {c.id: c.figure for c in report.charts}
    template = templates.env.get_template("research/report.html")
    return template.render(
        report=report,
        study=report.study,
        css=Markup(CSS.read_text(encoding="utf-8")),
        plotly_js=Markup(PLOTLY_JS.read_text(encoding="utf-8")),
        figures_json=Markup(_script_json(figures)),
        human_header=human_header_for(report),
        human_rows=human_rows(report),
        gold_note=GOLD_NOTE if report.gold else "",
        tables=[
            (title, metric_header(keys), metric_rows(report, keys))
            for title, keys in table_keys(report).items()
        ],
        compute_header=COMPUTE_HEADER,
        compute_rows=compute_rows(report),
    )


templates.env.globals.update(
    fmt_interval=fmt_interval,
    fmt_stat=fmt_stat,
    human_header_for=human_header_for,
    gold_note=GOLD_NOTE,
)


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element: no `</script>` or `<!--` can be formed."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
