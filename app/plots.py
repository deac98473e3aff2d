"""Plotly figures as plain JSON-able dicts, built server-side from the dashboard's read models.

Pure functions: no database, no request. Every point carries `customdata = [url, label, step]`
so the hover names the checkpoint and step and a click (static/charts.js) opens the checkpoint page.
Runs share axes: one trace per run, PPO runs as lines, SFT/DPO runs as reference markers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from judging.analysis.dashboard.checkpoints import HELDOUT_METRICS, CheckpointPoint
from judging.analysis.dashboard.runs import RunSummary
from judging.analysis.dashboard.series import TRAINING_METRICS, Series, smooth
from judging.analysis.dashboard.win_rates import Alarm, WinRates, alarms
from judging.stats.gao import GaoFit, fit_gao
from judging.stats.winrate import Interval

Figure = dict[str, Any]
PALETTE = (
    "#2f5bd3", "#d35f2f", "#2a9d5b", "#8e44ad", "#c0392b", "#16a085", "#b7950b", "#34495e",
)  # fmt: skip
_FONT = {"family": "system-ui, sans-serif", "size": 12}


@dataclass(frozen=True)
class Chart:
    """A figure and the DOM id it renders into."""

    id: str
    title: str
    figure: Figure


def checkpoint_url(checkpoint_id: int) -> str:
    return f"/research/checkpoints/{checkpoint_id}"


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"title": {"text": x}, "zeroline": False},
        "yaxis": {"title": {"text": y}, "zeroline": False},
        "font": _FONT,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "legend": {"orientation": "h", "y": -0.3, "yanchor": "top", "font": {"size": 11}},
        "hovermode": "closest",
        "height": 340,
        **extra,
    }


def _colour(run_id: int) -> str:
    """A run keeps its colour on every chart and every page."""
    return PALETTE[run_id % len(PALETTE)]


def _is_reference(algorithm: str) -> bool:
    """SFT/DPO runs (and imports) are reference points on per-step charts, not curves; a
    best-of-n ladder is a curve (step = n, KL = log n - (n-1)/n)."""
    return algorithm not in ("ppo", "best-of-n")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _hover(value_label: str) -> str:
    return (
        "<b>%{customdata[1]}</b><br>step %{customdata[2]}<br>"
        + value_label
        + ": %{y:.3f}<extra></extra>"
    )


def _by_run(points: Sequence[CheckpointPoint]) -> dict[int, list[CheckpointPoint]]:
    out: dict[int, list[CheckpointPoint]] = {}
    for p in points:
        out.setdefault(p.run_id, []).append(p)
    return out


def _error(lows: list[float | None], highs: list[float | None], ys: list[float]) -> dict[str, Any]:
    plus = [(h - y) if h is not None else 0.0 for h, y in zip(highs, ys, strict=True)]
    minus = [(y - lo) if lo is not None else 0.0 for lo, y in zip(lows, ys, strict=True)]
    return {"type": "data", "array": plus, "arrayminus": minus, "visible": True, "thickness": 1}


def _points_trace(
    points: Sequence[CheckpointPoint],
    getter: Callable[[CheckpointPoint], tuple[float, float | None, float | None] | None],
    *,
    name: str,
    colour: str,
    reference: bool,
    value_label: str,
    dash: str | None = None,
) -> dict[str, Any] | None:
    xs, ys, lows, highs, custom = [], [], [], [], []
    for p in sorted(points, key=lambda q: q.step):
        got = getter(p)
        if got is None or not _finite(got[0]):
            continue
        xs.append(p.step)
        ys.append(got[0])
        lows.append(got[1])
        highs.append(got[2])
        custom.append([checkpoint_url(p.id), p.label, p.step])
    if not xs:
        return None
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "markers" if reference else "lines+markers",
        "name": name,
        "x": xs,
        "y": ys,
        "customdata": custom,
        "hovertemplate": _hover(value_label),
        "marker": {"color": colour, "size": 9, "symbol": "diamond" if reference else "circle"},
        "line": {"color": colour, **({"dash": dash} if dash else {})},
    }
    if any(v is not None for v in lows + highs):
        trace["error_y"] = _error(lows, highs, ys)
    return trace


def _stat_getter(
    key: str,
) -> Callable[[CheckpointPoint], tuple[float, float | None, float | None] | None]:
    def get(p: CheckpointPoint) -> tuple[float, float | None, float | None] | None:
        stat = p.stat(key)
        return (stat.value, stat.low, stat.high) if stat else None

    return get


def heldout_figure(
    runs: Sequence[RunSummary], points: Sequence[CheckpointPoint], keys: Sequence[str], title: str
) -> Figure | None:
    """One or more held-out metrics per checkpoint against step, with CIs where stored."""
    names = {r.id: r for r in runs}
    traces = []
    for run_id, mine in _by_run(points).items():
        run = names.get(run_id)
        if run is None:
            continue
        for j, key in enumerate(keys):
            trace = _points_trace(
                mine,
                _stat_getter(key),
                name=f"{run.legend} · {HELDOUT_METRICS.get(key, key)}"
                if len(keys) > 1
                else run.legend,
                colour=_colour(run_id),
                reference=_is_reference(run.algorithm),
                value_label=HELDOUT_METRICS.get(key, key),
                dash=("solid", "dot", "dash", "dashdot")[j % 4],
            )
            if trace:
                traces.append(trace)
    if not traces:
        return None
    label = HELDOUT_METRICS.get(keys[0], keys[0]) if len(keys) == 1 else "value"
    layout = _layout(title, "training step", label)
    layout["height"] = 340 + 18 * max(0, len(traces) - 4)  # room for a long legend
    return {"data": traces, "layout": layout}


def training_figure(
    runs: Sequence[RunSummary],
    series: Mapping[int, Mapping[str, Series]],
    name: str,
    title: str,
    *,
    smoothing: float = 0.0,
    points: Sequence[CheckpointPoint] = (),
    heldout_key: str | None = None,
) -> Figure | None:
    """A training-time metric per step for every run (smoothed line over the raw one), plus the
    held-out estimate per checkpoint when `heldout_key` is given."""
    traces: list[dict[str, Any]] = []
    for run in runs:
        s = series.get(run.id, {}).get(name)
        if not s or not s.steps:
            continue
        label = TRAINING_METRICS.get(name, name)
        if smoothing > 0:
            traces.append({
                "type": "scatter", "mode": "lines", "name": f"{run.legend} (raw)", "x": s.steps,
                "y": s.values, "line": {"color": _colour(run.id), "width": 1}, "opacity": 0.3,
                "hovertemplate": f"{run.name}<br>step %{{x}}<br>{label}: %{{y:.3f}}<extra></extra>",
                "showlegend": False,
            })  # fmt: skip
        traces.append({
            "type": "scatter", "mode": "lines", "name": f"{run.legend} (train)", "x": s.steps,
            "y": smooth(s.values, smoothing) if smoothing > 0 else s.values,
            "line": {"color": _colour(run.id), "width": 2},
            "hovertemplate": f"{run.name}<br>step %{{x}}<br>{label}: %{{y:.3f}}<extra></extra>",
        })  # fmt: skip
    if heldout_key:
        by_run = _by_run(points)
        for run in runs:
            trace = _points_trace(
                by_run.get(run.id, []),
                _stat_getter(heldout_key),
                name=f"{run.legend} (held-out)",
                colour=_colour(run.id),
                reference=True,
                value_label=HELDOUT_METRICS.get(heldout_key, heldout_key),
            )
            if trace:
                traces.append(trace)
    if not traces:
        return None
    layout = _layout(title, "training step", TRAINING_METRICS.get(name, name))
    layout["height"] = 340 + 18 * max(0, len(traces) - 4)
    return {"data": traces, "layout": layout}


def _interval_getter(
    rates: Mapping[int, WinRates], which: str
) -> Callable[[CheckpointPoint], tuple[float, float | None, float | None] | None]:
    def get(p: CheckpointPoint) -> tuple[float, float | None, float | None] | None:
        wr = rates.get(p.id)
        interval: Interval | None = getattr(wr, which) if wr else None
        return (interval.estimate, interval.low, interval.high) if interval else None

    return get


def _half_line(x_range: tuple[float, float]) -> dict[str, Any]:
    return {
        "type": "line", "x0": x_range[0], "x1": x_range[1], "y0": 0.5, "y1": 0.5,
        "line": {"color": "#999", "dash": "dot", "width": 1},
    }  # fmt: skip


def _gold_getter(
    gold: Mapping[int, Interval],
) -> Callable[[CheckpointPoint], tuple[float, float | None, float | None] | None]:
    def get(p: CheckpointPoint) -> tuple[float, float | None, float | None] | None:
        interval = gold.get(p.id)
        return (interval.estimate, interval.low, interval.high) if interval else None

    return get


def win_rate_figure(
    runs: Sequence[RunSummary],
    points: Sequence[CheckpointPoint],
    rates: Mapping[int, WinRates],
    gold: Mapping[int, Interval] | None = None,
) -> Figure | None:
    """Human win rate vs the base per step with 95% prompt-clustered intervals: raw and LC; for
    a simulated study also the gold preference's own (noise-free) win rate on the same pairs."""
    names = {r.id: r for r in runs}
    traces = []
    for run_id, mine in _by_run([p for p in points if p.id in rates]).items():
        run = names.get(run_id)
        if run is None:
            continue
        if gold:
            trace = _points_trace(
                mine,
                _gold_getter(gold),
                name=f"{run.legend} · gold preference",
                colour=_colour(run_id),
                reference=_is_reference(run.algorithm),
                value_label="gold win rate (noise-free)",
                dash="dot",
            )
            if trace:
                trace["marker"]["symbol"] = "star"
                traces.append(trace)
        for which, dash, suffix in (("raw", None, "raw"), ("lc", "dash", "length-controlled")):
            trace = _points_trace(
                mine,
                _interval_getter(rates, which),
                name=f"{run.legend} · {suffix}",
                colour=_colour(run_id),
                reference=_is_reference(run.algorithm),
                value_label=f"win rate ({suffix})",
                dash=dash,
            )
            if trace:
                traces.append(trace)
    if not traces:
        return None
    steps = [x for t in traces for x in t["x"]]
    layout = _layout(
        "Human win rate vs base (95% CI, clustered by prompt)", "training step", "win rate"
    )
    layout["yaxis"]["range"] = [0, 1]
    layout["shapes"] = [_half_line((min(steps), max(steps)))]
    return {"data": traces, "layout": layout}


def fit_for(
    points: Sequence[CheckpointPoint], rates: Mapping[int, WinRates], kl_key: str = "kl_k3"
) -> GaoFit | None:
    """Gao et al.'s curve through (held-out KL, raw win rate) of the judged checkpoints."""
    pairs = []
    for p in points:
        kl, wr = p.value(kl_key), rates.get(p.id)
        if kl is not None and wr is not None and wr.raw is not None:
            pairs.append((kl, wr.raw.estimate))
    return fit_gao(pairs, baseline=0.5)


def _peak_d(fit: GaoFit) -> float | None:
    """The fitted peak's sqrt(KL), or None when it is astronomically far (exp overflow)."""
    try:
        peak = fit.peak_d
    except OverflowError:
        return None
    return peak if math.isfinite(peak) else None


def win_rate_vs_kl_figure(
    points: Sequence[CheckpointPoint],
    rates: Mapping[int, WinRates],
    *,
    sqrt_axis: bool,
    kl_key: str = "kl_k3",
    fit: GaoFit | None = None,
) -> Figure | None:
    """Win rate against held-out KL (or sqrt KL, Gao et al.'s x-axis) with the fitted curve and
    its predicted peak (the fit models the gain over the base; its baseline is added back)."""
    traces: list[dict[str, Any]] = []
    xs: list[float] = []
    axis = "sqrt(KL)" if sqrt_axis else "KL"
    for run_id, mine in _by_run(points).items():
        run_xs, ys, custom, lows, highs = [], [], [], [], []
        for p in sorted(mine, key=lambda q: q.step):
            kl, wr = p.value(kl_key), rates.get(p.id)
            if kl is None or wr is None or wr.raw is None:
                continue
            run_xs.append(math.sqrt(max(kl, 0.0)) if sqrt_axis else kl)
            ys.append(wr.raw.estimate)
            lows.append(wr.raw.low)
            highs.append(wr.raw.high)
            custom.append([checkpoint_url(p.id), p.label, p.step])
        if not run_xs:
            continue
        xs += run_xs
        traces.append({
            "type": "scatter", "mode": "markers", "name": mine[0].run_name, "x": run_xs, "y": ys,
            "customdata": custom, "marker": {"size": 9, "color": _colour(run_id)},
            "error_y": _error(list(lows), list(highs), ys),
            "hovertemplate": "<b>%{customdata[1]}</b><br>step %{customdata[2]}<br>"
            + axis + ": %{x:.3f}<br>win rate: %{y:.3f}<extra></extra>",
        })  # fmt: skip
    if not traces:
        return None
    if fit is not None:
        top = max(xs if sqrt_axis else [math.sqrt(max(x, 0.0)) for x in xs])
        peak = _peak_d(fit)
        if peak is not None and peak <= 3 * top:
            top = max(top, peak)
        ds = [top * 1.15 * k / 60 for k in range(0, 61)]
        traces.append({
            "type": "scatter", "mode": "lines", "name": "fit d(a - b log d)",
            "x": ds if sqrt_axis else [d * d for d in ds],
            "y": [fit.predict(d) for d in ds], "line": {"color": "#888", "dash": "dash"},
            "hoverinfo": "skip",
        })  # fmt: skip
        if peak is not None and peak <= top:
            traces.append({
                "type": "scatter", "mode": "markers", "name": "predicted peak",
                "x": [fit.peak_d if sqrt_axis else fit.peak_kl],
                "y": [fit.peak_value], "marker": {"symbol": "star", "size": 14, "color": "#c0392b"},
                "hovertemplate": "predicted peak<br>x %{x:.3f}<br>win rate %{y:.3f}<extra></extra>",
            })  # fmt: skip
    x_title = "sqrt(KL from base), held-out k3" if sqrt_axis else "KL from base (held-out k3, nats)"
    title = "Win rate vs sqrt(KL)" if sqrt_axis else "Win rate vs KL"
    layout = _layout(title, x_title, "win rate")
    layout["yaxis"]["range"] = [0, 1]
    return {"data": traces, "layout": layout}


def rm_vs_win_rate_figure(
    points: Sequence[CheckpointPoint],
    rates: Mapping[int, WinRates],
    alarms: Sequence[Alarm] = (),
) -> Figure | None:
    """Held-out RM score against human win rate per checkpoint, in step order.

    The path connects consecutive checkpoints of a run, so "reward up, humans down" shows as a
    segment going right and down.
    """
    traces = []
    for run_id, mine in _by_run(points).items():
        xs, ys, custom = [], [], []
        for p in sorted(mine, key=lambda q: q.step):
            reward, wr = p.value("reward"), rates.get(p.id)
            if reward is None or wr is None or wr.raw is None:
                continue
            xs.append(reward)
            ys.append(wr.raw.estimate)
            custom.append([checkpoint_url(p.id), p.label, p.step])
        if xs:
            traces.append({
                "type": "scatter", "mode": "lines+markers+text", "name": mine[0].run_name,
                "x": xs, "y": ys, "customdata": custom, "text": [str(c[2]) for c in custom],
                "textposition": "top center", "marker": {"size": 9, "color": _colour(run_id)},
                "line": {"color": _colour(run_id), "width": 1},
                "hovertemplate": "<b>%{customdata[1]}</b><br>step %{customdata[2]}<br>"
                "RM score: %{x:.3f}<br>win rate: %{y:.3f}<extra></extra>",
            })  # fmt: skip
    if not traces:
        return None
    if alarms:
        seg_x: list[float | None] = []
        seg_y: list[float | None] = []
        for alarm in alarms:
            for point in (alarm.before, alarm.after):
                interval = rates[point.id].raw
                seg_x.append(point.value("reward"))
                seg_y.append(interval.estimate if interval else None)
            seg_x.append(None)  # a gap between segments
            seg_y.append(None)
        alarm_trace: dict[str, Any] = {
            "type": "scatter", "mode": "lines", "name": "divergence alarm", "x": seg_x, "y": seg_y,
            "line": {"color": "#c0392b", "width": 4}, "opacity": 0.6, "hoverinfo": "skip",
        }  # fmt: skip
        traces.append(alarm_trace)
    layout = _layout("RM score vs human win rate", "held-out RM score", "human win rate")
    layout["yaxis"]["range"] = [0, 1]
    return {"data": traces, "layout": layout}


def run_charts(
    runs: Sequence[RunSummary],
    points: Sequence[CheckpointPoint],
    series: Mapping[int, Mapping[str, Series]],
    rates: Mapping[int, WinRates],
    *,
    fit: GaoFit | None = None,
    gold: Mapping[int, Interval] | None = None,
) -> list[Chart]:
    """Every chart of the runs overview and run page, in reading order; empty ones left out."""

    def held(keys: list[str], title: str) -> Figure | None:
        return heldout_figure(runs, points, keys, title)

    specs: list[tuple[str, str, Figure | None]] = [
        ("win-rate", "Human win rate", win_rate_figure(runs, points, rates, gold)),
        (
            "rm-score",
            "RM score",
            training_figure(
                runs,
                series,
                "objective/scores",
                "RM score: training (smoothed) and held-out (95% CI)",
                smoothing=0.6,
                points=points,
                heldout_key="reward",
            ),
        ),
        ("eval-rm", "Evaluation RM", held(["eval_reward"], "Evaluation reward model score")),
        (
            "kl",
            "KL",
            training_figure(
                runs,
                series,
                "objective/kl",
                "KL from base: training objective/kl and held-out k3",
                points=points,
                heldout_key="kl_k3",
            ),
        ),
        ("length", "Length", held(["length_tokens"], "Response length (held-out, tokens)")),
        ("truncation", "Truncation", held(["truncation_rate"], "Truncation rate (held-out)")),
        (
            "repetition",
            "Repetition",
            held(
                ["seq_rep_4", "distinct_1", "distinct_2", "self_bleu"],
                "Repetition: seq-rep-4, distinct-1/2, self-BLEU",
            ),
        ),
        (
            "tics",
            "Formatting tics",
            held(
                ["headers_rate", "bullets_rate", "bold_rate", "emoji_rate"],
                "Formatting tics (share of responses)",
            ),
        ),
        (
            "refusals",
            "Refusals and sycophancy",
            held(["refusal_rate", "sycophancy_rate"], "Refusals and sycophancy markers"),
        ),
        ("wr-kl", "Win rate vs KL", win_rate_vs_kl_figure(points, rates, sqrt_axis=False, fit=fit)),
        (
            "wr-sqrt-kl",
            "Win rate vs sqrt(KL)",
            win_rate_vs_kl_figure(points, rates, sqrt_axis=True, fit=fit),
        ),
        (
            "rm-vs-wr",
            "RM score vs win rate",
            rm_vs_win_rate_figure(points, rates, alarms(points, rates)),
        ),
    ]
    return [Chart(cid, title, fig) for cid, title, fig in specs if fig is not None]
