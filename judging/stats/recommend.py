"""The best-checkpoint recommendation: a documented rule over plain evidence.

The default rule (`RecommendationRule()`, every field documented there):

1. A checkpoint is a candidate only if it was judged on at least `min_prompts` distinct prompts,
   its interval on the ranking metric is no wider than `max_interval_width`, it carries no *hard*
   reward-hacking flag (degenerate text a win rate on a few hundred prompts can miss), and its KL
   per response token stays within `max_kl_per_token`.
2. Among candidates the one with the best win rate on the ranking metric wins. Both metrics come
   from one joint model of the study's votes (`stats.lc_winrate`) with prompt difficulty and a
   virtual-tie prior, so a sparse sweep is pulled towards 1/2 and cannot outrank hundreds of
   verdicts on luck.
3. How sure: from the joint prompt resamples (every checkpoint's estimate moves with the same
   drawn prompts), P(the choice is within `delta` of the best candidate) and the expected regret
   in win-rate points; the runner-up comparison is a paired difference with an interval that
   holds simultaneously against every other candidate, since the choice was selected from them.

No text here: `judging.analysis.explain` writes the explanation from the decision.
Pure: no database. `judging.analysis.recommendation` loads the evidence and stores the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from judging.stats.divergence import CurvePoint, Divergence, divergence_alarms
from judging.stats.lc_winrate import Array, Estimates, joint_bootstrap
from judging.stats.posterior import curve_design, deviation_variance, posterior, posterior_draws
from judging.stats.rule import (
    MIN_PROMPTS,
    CheckpointEvidence,
    CheckpointScore,
    Decision,
    Difference,
    RecommendationRule,
)
from judging.stats.winrate import Interval


def exclusion_reasons(
    e: CheckpointEvidence, ranked: Interval | None, rule: RecommendationRule
) -> tuple[str, ...]:
    """Why a checkpoint is not a candidate under the rule (empty: it is one)."""
    if not e.votes:
        return ("no verdicts",)
    reasons = []
    prompts = len({v.prompt_id for v in e.votes})
    if prompts < rule.min_prompts:
        reasons.append(f"judged on {prompts} prompts (minimum {rule.min_prompts})")
    limit = rule.max_interval_width
    width = ranked.high - ranked.low if ranked is not None else None
    if limit is not None and width is not None and width > limit:
        reasons.append(f"interval {width:.2f} wide (maximum {limit:g})")
    reasons += [f"hard flag {f}" for f in e.flags if f.startswith(rule.hard_flags)]
    guard, per_token = rule.max_kl_per_token, e.kl_per_token
    if guard is not None and per_token is not None and per_token > guard:
        reasons.append(f"KL {per_token:.3f} nats per token over the guard of {guard:g}")
    if rule.max_kl is not None and e.kl is not None and e.kl.estimate > rule.max_kl:
        reasons.append(f"KL {e.kl.estimate:.2f} over the budget of {rule.max_kl:g} nats")
    return tuple(reasons)


def _kl_key(e: CheckpointEvidence) -> float:
    per_token = e.kl_per_token
    return per_token if per_token is not None else float("inf")


class _Ranking:
    """The ranking metric's point estimates and joint draws, indexed by evidence position."""

    def __init__(self, fitted: Estimates | None, n: int, rule: RecommendationRule) -> None:
        which = "lc" if rule.metric == "lc" else "adjusted"
        self.point = np.full(n, np.nan)
        self.draws: Array = np.full((rule.n_boot if fitted else 0, n), np.nan)
        if fitted is not None:
            cols = [int(k) for k in fitted.keys]  # type: ignore[call-overload]  # positions
            self.point[cols] = getattr(fitted, which)
            self.draws[:, cols] = getattr(fitted, f"{which}_draws")


def _posterior(
    evidence: Sequence[CheckpointEvidence], rank: _Ranking, candidates: Sequence[int],
    rule: RecommendationRule,
) -> tuple[Array, Array]:  # fmt: skip
    """Posterior means (n,) and draws (B, n) of the candidates' ranking metric, NaN elsewhere
    (see `stats.posterior`; with `prior="none"`, the point estimates and raw resamples)."""
    cols = list(candidates)
    mean, draws = np.full(len(evidence), np.nan), np.full((rule.n_boot, len(evidence)), np.nan)
    x, boot = rank.point[cols], rank.draws[:, cols]
    if rule.prior == "none" or len(boot) < 2:
        mean[cols], draws[: len(boot), cols] = x, boot
        return mean, draws[: len(boot)]
    cov = np.atleast_2d(np.cov(boot, rowvar=False))
    kl = [evidence[i].kl.estimate if evidence[i].kl is not None else None for i in cols]  # type: ignore[union-attr]
    runs = [evidence[i].run for i in cols]
    design = curve_design(runs, kl if rule.prior == "curve" else [None] * len(cols))
    tau2 = deviation_variance(x, cov, design, POSTERIOR_FLOOR)
    mean[cols], covariance = posterior(x, cov, design, tau2)
    draws[:, cols] = posterior_draws(
        mean[cols], covariance, rule.n_boot, np.random.default_rng(rule.seed)
    )
    return mean, draws


METRICS = ("raw", "lc", "adjusted")
POSTERIOR_FLOOR = 0.01
"""Smallest spread of the candidates' true win rates around their curve (win-rate points) the
posterior assumes: below it, a handful of estimates cannot tell "on the curve" from "close"."""


def _intervals(fitted: Estimates | None, n: int, level: float) -> dict[str, list[Interval | None]]:
    """Per metric, each checkpoint's interval by evidence position (None without votes)."""
    out: dict[str, list[Interval | None]] = {w: [None] * n for w in METRICS}
    if fitted is not None:
        for w in METRICS:
            for key, interval in zip(fitted.keys, fitted.intervals(w, level), strict=True):
                out[w][int(key)] = interval  # type: ignore[call-overload]  # keys: positions
    return out


def _score(
    i: int, e: CheckpointEvidence, intervals: dict[str, list[Interval | None]],
    reasons: tuple[str, ...], posterior: Array | None, rule: RecommendationRule,
) -> CheckpointScore:  # fmt: skip
    prompts = len({v.prompt_id for v in e.votes})
    p_best = p_within = 0.0
    regret = None
    if posterior is not None and len(posterior) and not reasons:
        best, mine = np.nanmax(posterior, axis=1), posterior[:, i]
        p_best = float(np.mean(mine >= best))
        p_within = float(np.mean(mine >= best - rule.delta))
        regret = float(np.mean(best - mine))
    return CheckpointScore(
        e.checkpoint_id, e.label, len(e.votes), prompts, intervals["raw"][i], intervals["lc"][i],
        intervals["adjusted"][i], not reasons, reasons, prompts < MIN_PROMPTS, p_best, p_within,
        regret,
    )  # fmt: skip


def _pick(
    evidence: Sequence[CheckpointEvidence], point: Array, candidates: Sequence[int],
    rule: RecommendationRule,
) -> tuple[int, int | None, bool]:  # fmt: skip
    """(choice, runner-up, lower KL preferred): the best posterior mean (ties to lower KL per
    token, then to the earlier step), or with `prefer_lower_kl_within_delta` the lowest KL per
    token among candidates within delta of it."""
    ranked = sorted(
        candidates,
        key=lambda i: (-point[i], _kl_key(evidence[i]), evidence[i].step),
    )
    top = ranked[0]
    runner = ranked[1] if len(ranked) > 1 else None
    if rule.prefer_lower_kl_within_delta:
        close = [i for i in ranked if point[i] >= point[top] - rule.delta]
        gentlest = min(close, key=lambda i: (_kl_key(evidence[i]), evidence[i].step))
        if gentlest != top:
            return gentlest, top, True
    return top, runner, False


def _differences(
    evidence: Sequence[CheckpointEvidence], rank: _Ranking, choice: int,
    candidates: Sequence[int], rule: RecommendationRule,
) -> dict[int, Difference]:  # fmt: skip
    """Choice minus each other candidate with simultaneous intervals: the bootstrap quantile of
    the largest standardised deviation over all the comparisons (a max-t interval)."""
    others = [i for i in candidates if i != choice]
    if not others or not len(rank.draws):
        return {}
    diffs = rank.draws[:, [choice]] - rank.draws[:, others]  # (B, J)
    point = rank.point[choice] - rank.point[others]
    sd = np.std(diffs, axis=0, ddof=1) if len(diffs) > 1 else np.zeros(len(others))
    sd = np.where(sd > 0, sd, np.inf)
    t = np.max(np.abs(diffs - point) / sd, axis=1)
    q = float(np.quantile(t, rule.level)) if np.isfinite(t).any() else 0.0
    sd = np.where(np.isfinite(sd), sd, 0.0)
    mine = {v.prompt_id for v in evidence[choice].votes}
    return {
        j: Difference(
            evidence[j].checkpoint_id, float(point[n]), float(point[n] - q * sd[n]),
            float(point[n] + q * sd[n]), rule.level, len(others),
            len(mine & {v.prompt_id for v in evidence[j].votes}),
        )
        for n, j in enumerate(others)
    }  # fmt: skip


def _highest_reward(evidence: Sequence[CheckpointEvidence]) -> int | None:
    scored = [
        (e.reward.estimate, e.step, i) for i, e in enumerate(evidence) if e.reward is not None
    ]
    return max(scored)[2] if scored else None


def _last(evidence: Sequence[CheckpointEvidence], choice: int | None) -> int | None:
    if not evidence:
        return None
    run = evidence[choice].run if choice is not None else None
    same = [(e.step, i) for i, e in enumerate(evidence) if run is None or e.run == run]
    return max(same)[1]


def _alarms(
    evidence: Sequence[CheckpointEvidence], scores: Sequence[CheckpointScore]
) -> tuple[Divergence, ...]:
    alarms: list[Divergence] = []
    for run in sorted({e.run for e in evidence}):
        points = [
            CurvePoint(e.checkpoint_id, e.step, e.reward, s.win_rate)
            for e, s in zip(evidence, scores, strict=True)
            if e.run == run
        ]
        alarms += divergence_alarms(points)
    return tuple(alarms)


def _problem(evidence: Sequence[CheckpointEvidence], fitted: Estimates | None) -> str:
    if not evidence:
        return "the study has no checkpoints"
    if fitted is None:
        return "no checkpoint has verdicts yet"
    return "every checkpoint is excluded by the rule"


def recommend(
    evidence: Sequence[CheckpointEvidence], rule: RecommendationRule | None = None
) -> Decision:
    """Apply the rule to the evidence; `choice` is None (with `problem` saying why) when no
    checkpoint qualifies."""
    rule = rule or RecommendationRule()
    return decide(evidence, fit_evidence(evidence, rule), rule)


def fit_evidence(
    evidence: Sequence[CheckpointEvidence], rule: RecommendationRule
) -> Estimates | None:
    """The joint fit and bootstrap the rule reads (keys are positions in `evidence`). Rules that
    differ only in what they do with the estimates can share one (the decision bench does)."""
    return joint_bootstrap(
        {i: e.votes for i, e in enumerate(evidence)}, rule.n_boot, rule.seed, rule.model
    )


def decide(
    evidence: Sequence[CheckpointEvidence], fitted: Estimates | None, rule: RecommendationRule
) -> Decision:
    """The rule applied to an already fitted study (see `fit_evidence`)."""
    rank = _Ranking(fitted, len(evidence), rule)
    intervals = _intervals(fitted, len(evidence), rule.level)
    ranked = intervals["lc" if rule.metric == "lc" else "adjusted"]
    reasons = [exclusion_reasons(e, ranked[i], rule) for i, e in enumerate(evidence)]
    candidates = [i for i, r in enumerate(reasons) if not r]
    post_mean, post = _posterior(evidence, rank, candidates, rule) if candidates else (None, None)
    scores = [_score(i, e, intervals, reasons[i], post, rule) for i, e in enumerate(evidence)]
    ids = [e.checkpoint_id for e in evidence]
    highest, last = _highest_reward(evidence), _last(evidence, None)
    if not candidates:
        return Decision(
            rule, tuple(scores), None, None, None, None, False, None,
            ids[highest] if highest is not None else None, ids[last] if last is not None else None,
            {}, _alarms(evidence, scores), _problem(evidence, fitted),
        )  # fmt: skip
    assert post_mean is not None and post is not None
    choice, runner, preferred = _pick(evidence, post_mean, candidates, rule)
    diffs = _differences(evidence, rank, choice, candidates, rule)
    beats = {
        ids[j]: float(np.mean(post[:, choice] > post[:, j])) for j in candidates if j != choice
    }
    last = _last(evidence, choice)
    return Decision(
        rule=rule,
        scores=tuple(scores),
        choice=ids[choice],
        runner_up=ids[runner] if runner is not None else None,
        p_within_delta=scores[choice].p_within_delta,
        expected_regret=scores[choice].expected_regret,
        lower_kl_preferred=preferred,
        runner_up_difference=diffs.get(runner) if runner is not None else None,
        highest_reward=ids[highest] if highest is not None else None,
        last=ids[last] if last is not None else None,
        beats=beats,
        alarms=_alarms(evidence, scores),
    )
