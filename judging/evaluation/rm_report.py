"""Reward-model evaluation maths: pairwise accuracy, calibration, reward-vs-length correlation.

Pure functions over plain floats so they can be tested on hand-computed cases; the trainer only
feeds them scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class CalibrationBin:
    """Pairs whose predicted P(chosen wins) fell in [low, high)."""

    low: float
    high: float
    count: int
    mean_predicted: float | None
    observed: float | None


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def pairwise_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs where the chosen response scores strictly higher; ties count half."""
    if len(chosen) != len(rejected):
        raise ValueError("chosen and rejected must have the same length")
    if not chosen:
        raise ValueError("no pairs to score")
    wins = sum(
        1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)
    )
    return wins / len(chosen)


def calibration_bins(
    chosen: Sequence[float], rejected: Sequence[float], n_bins: int = 10
) -> list[CalibrationBin]:
    """Reliability bins of sigmoid(margin) against the observed share of chosen-wins.

    Each pair is entered in both orientations (margin m with outcome 1 and -m with outcome 0), so
    the bins span [0, 1] symmetrically and a perfectly calibrated model lies on the diagonal.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    sums = [[0, 0.0, 0.0] for _ in range(n_bins)]
    for c, r in zip(chosen, rejected, strict=True):
        for margin, outcome in ((c - r, 1.0), (r - c, 0.0)):
            p = sigmoid(margin)
            index = min(int(p * n_bins), n_bins - 1)
            sums[index][0] += 1
            sums[index][1] += p
            sums[index][2] += outcome
    bins = []
    for i, (count, p_sum, o_sum) in enumerate(sums):
        n = int(count)
        bins.append(
            CalibrationBin(
                low=i / n_bins,
                high=(i + 1) / n_bins,
                count=n,
                mean_predicted=p_sum / n if n else None,
                observed=o_sum / n if n else None,
            )
        )
    return bins


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float:
    """Count-weighted mean |predicted - observed| over non-empty bins."""
    total = sum(b.count for b in bins)
    if total == 0:
        return 0.0
    return (
        sum(b.count * abs((b.mean_predicted or 0.0) - (b.observed or 0.0)) for b in bins if b.count)
        / total
    )


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); ties counted half are fine."""
    if n <= 0:
        raise ValueError("n must be positive")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson correlation; None when either side has no variance or fewer than 2 points."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def build_report(
    *,
    chosen: Sequence[float],
    rejected: Sequence[float],
    chosen_lengths: Sequence[int],
    rejected_lengths: Sequence[int],
    n_bins: int = 10,
) -> dict[str, Any]:
    """Every figure of the held-out report as a JSON-ready dict."""
    bins = calibration_bins(chosen, rejected, n_bins)
    scores = [*chosen, *rejected]
    lengths = [float(n) for n in (*chosen_lengths, *rejected_lengths)]
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    accuracy = pairwise_accuracy(chosen, rejected)
    return {
        "pairs": len(chosen),
        "accuracy": accuracy,
        "accuracy_ci95": list(wilson_interval(accuracy * len(chosen), len(chosen))),
        "mean_margin": sum(margins) / len(margins),
        "ece": expected_calibration_error(bins),
        "calibration": [asdict(b) for b in bins],
        "reward_length_pearson": pearson(scores, lengths),
        "chosen_longer_share": sum(
            1 for a, b in zip(chosen_lengths, rejected_lengths, strict=True) if a > b
        )
        / len(chosen),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(report: dict[str, Any]) -> str:
    ci = report.get("accuracy_ci95")  # absent from reports written before it existed
    return f" (95% Wilson interval {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""


def report_markdown(report: dict[str, Any], card: dict[str, Any]) -> str:
    """A short human-readable report plus model card."""
    lines = [
        f"# Reward model report: {card.get('run', '')}",
        "",
        f"- Held-out pairs: {report['pairs']}",
        f"- Pairwise accuracy: {_fmt(report['accuracy'])}{_interval(report)}",
        f"- Mean margin (chosen - rejected): {_fmt(report['mean_margin'])}",
        f"- Expected calibration error: {_fmt(report['ece'])}",
        f"- Pearson(score, response length in tokens): {_fmt(report['reward_length_pearson'])}",
        f"- Share of pairs whose chosen response is longer: {_fmt(report['chosen_longer_share'])}",
        "",
        "## Calibration (sigmoid(margin) vs observed, both orientations of each pair)",
        "",
        "| bin | count | mean predicted | observed |",
        "|---|---|---|---|",
    ]
    for b in report["calibration"]:
        lines.append(
            f"| {b['low']:.1f}-{b['high']:.1f} | {b['count']} | {_fmt(b['mean_predicted'])} | "
            f"{_fmt(b['observed'])} |"
        )
    lines += ["", "## Model card", ""]
    lines += [f"- {key}: {value}" for key, value in card.items()]
    lines += [
        "",
        "A strong positive reward/length correlation means the model pays for length itself: a "
        "policy optimised against it can raise its score by writing longer answers.",
        "",
    ]
    return "\n".join(lines)
