"""Agreement and rater-quality statistics as pure functions over plain tuples.

In the style of FastChat's `rating_systems.py`: no database, no pandas, easy to test by hand.
Labels are any hashable values (here the winner: checkpoint / reference / tie / both_bad, so that
agreement is about the verdict and not about which side each rater happened to see).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
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


def fleiss_kappa(units: Iterable[Sequence[L]]) -> float | None:
    """Fleiss' kappa for a fixed number n >= 2 of ratings per unit (Fleiss 1971).

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)) is unit i's pairwise agreement, P_bar their mean;
    p_j is category j's share of all ratings and P_e = sum_j p_j^2. kappa = (P_bar - P_e) /
    (1 - P_e). Raters need not be the same people across units (that is the point of Fleiss'
    kappa, and of our design where each comparison draws its own N raters). Raises ValueError
    when units have different numbers of ratings; None without units or when P_e is 1.
    """
    rows = [Counter(labels) for labels in units]
    if not rows:
        return None
    sizes = {sum(row.values()) for row in rows}
    if len(sizes) != 1:
        raise ValueError(
            f"Fleiss' kappa needs the same number of ratings per unit, got {sorted(sizes)}"
        )
    n = sizes.pop()
    if n < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per unit")
    p_bar = sum((sum(c * c for c in row.values()) - n) / (n * (n - 1)) for row in rows) / len(rows)
    totals: Counter[L] = Counter()
    for row in rows:
        totals.update(row)
    p_e = sum((count / (n * len(rows))) ** 2 for count in totals.values())
    if p_e == 1:
        return 1.0 if p_bar == 1 else None
    return (p_bar - p_e) / (1 - p_e)


R = TypeVar("R", bound=Hashable)


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of one pair of raters over the units both rated."""

    rater_a: Hashable
    rater_b: Hashable
    n: int
    agreement: float
    kappa: float | None


def pairwise_cohen_kappa(units: Iterable[Mapping[R, L]]) -> list[PairAgreement]:
    """Cohen's kappa for every pair of raters over the units both of them rated.

    `units` maps rater -> label per unit. Pairs are ordered by sorted rater key, so each pair's
    two marginals belong to two real people (pooling all pairs into one "Cohen's kappa" mixes
    raters and is not Cohen's kappa).
    """
    by_pair: dict[tuple[R, R], list[tuple[L, L]]] = defaultdict(list)
    for unit in units:
        raters = sorted(unit, key=repr)
        for a, b in combinations(raters, 2):
            by_pair[(a, b)].append((unit[a], unit[b]))
    out = []
    for (a, b), pairs in sorted(by_pair.items(), key=lambda kv: (repr(kv[0][0]), repr(kv[0][1]))):
        agree = sum(x == y for x, y in pairs) / len(pairs)
        out.append(PairAgreement(a, b, len(pairs), agree, cohen_kappa(pairs)))
    return out
