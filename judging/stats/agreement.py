"""Agreement and rater-quality statistics as pure functions over plain tuples.

In the style of FastChat's `rating_systems.py`: no database, no pandas, easy to test by hand.
Labels are any hashable values (here the winner: checkpoint / reference / tie / both_bad, so that
agreement is about the verdict and not about which side each rater happened to see).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from itertools import combinations, permutations
from typing import TypeVar

L = TypeVar("L", bound=Hashable)


def raw_agreement(units: Iterable[Sequence[L]]) -> float | None:
    """Share of agreeing rater pairs, pooled over units with at least two ratings."""
    agree = total = 0
    for labels in units:
        for a, b in combinations(labels, 2):
            total += 1
            agree += a == b
    return agree / total if total else None


def cohen_kappa(pairs: Sequence[tuple[L, L]]) -> float | None:
    """Cohen's kappa for two ratings per item: (p_o - p_e) / (1 - p_e).

    With pooled rater pairs, the first element is the rater with the lower id in each pair, so
    the two marginals are those of "first" and "second" rater positions.
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    if expected == 1:
        return 1.0 if observed == 1 else None
    return (observed - expected) / (1 - expected)


def krippendorff_alpha_nominal(units: Iterable[Sequence[L | None]]) -> float | None:
    """Krippendorff's alpha for nominal data; None entries are missing, any number of raters.

    Built on the coincidence matrix: alpha = 1 - (n - 1) * D_o / D_e with
    D_o = sum_{c != k} o_ck and D_e = sum_{c != k} n_c n_k / n (Krippendorff 2011).
    """
    coincidence: dict[tuple[L, L], float] = defaultdict(float)
    for labels in units:
        values = [v for v in labels if v is not None]
        m = len(values)
        if m < 2:
            continue  # units with one value are not pairable
        for a, b in permutations(values, 2):
            coincidence[(a, b)] += 1 / (m - 1)
    totals: dict[L, float] = defaultdict(float)
    for (a, _b), weight in coincidence.items():
        totals[a] += weight
    n = sum(totals.values())
    if n <= 1:
        return None
    disagree_observed = sum(w for (a, b), w in coincidence.items() if a != b)
    disagree_expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k) / (
        n - 1
    )
    if disagree_expected == 0:
        return 1.0 if disagree_observed == 0 else None
    return 1 - disagree_observed / disagree_expected


def position_bias(choices: Iterable[str]) -> float | None:
    """Share of `left` among left/right choices (about 0.5 for an unbiased rater)."""
    sided = [c for c in choices if c in ("left", "right")]
    if not sided:
        return None
    return sum(c == "left" for c in sided) / len(sided)


def median_or_none(values: Iterable[float]) -> float | None:
    data = list(values)
    return float(statistics.median(data)) if data else None


def pass_rate(outcomes: Iterable[bool]) -> float | None:
    data = list(outcomes)
    return sum(data) / len(data) if data else None


def winner(choice: str, checkpoint_side: str) -> str:
    """Resolve a sided choice to what won: checkpoint, reference, tie or both_bad."""
    if choice in ("tie", "both_bad"):
        return choice
    return "checkpoint" if choice == checkpoint_side else "reference"
