"""The recommendation's explanation, written from the numbers (no canned verdicts).

Always the same parts: the rule; what was chosen and how sure (P(within delta of the best) and
expected regret from the joint resamples); the runner-up; why not the highest-reward checkpoint;
why not the last checkpoint of the run. Each contrast names the evidence that separates them:
exclusion reasons, length-controlled vs raw human win rate, KL per token, length growth,
repetition, flags, and divergence alarms. The rule itself (`stats.recommend`) returns no text.
"""

from __future__ import annotations

from collections.abc import Sequence

from judging.stats.rule import CheckpointEvidence, CheckpointScore, Decision
from judging.stats.winrate import Interval

LENGTH_EFFECT = 0.03
"""A raw-to-LC drop larger than this is called out as "won on length"."""

Pair = tuple[CheckpointEvidence, CheckpointScore]


def _iv(interval: Interval | None) -> str:
    if interval is None:
        return "n/a"
    return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _kl(e: CheckpointEvidence) -> str:
    if e.kl is None:
        return "n/a"
    per_token = e.kl_per_token
    tail = f" ({per_token:.3f} per token)" if per_token is not None else ""
    return f"{e.kl.estimate:.2f} nats{tail}"


def _reward(e: CheckpointEvidence) -> str:
    return "n/a" if e.reward is None else f"{e.reward.estimate:.3f}"


def profile(e: CheckpointEvidence, s: CheckpointScore) -> str:
    """One checkpoint's numbers in one line."""
    flags = ", ".join(e.flags) if e.flags else "none"
    growth = "n/a" if e.length_growth is None else f"x{e.length_growth:.2f}"
    eval_rm = f", evaluation reward {e.eval_reward.estimate:.3f}" if e.eval_reward else ""
    coverage = " (too few prompts: interval unreliable)" if s.low_coverage and s.n_prompts else ""
    return (
        f"LC win rate {_iv(s.lc_win_rate)}, raw win rate {_iv(s.win_rate)} "
        f"({s.n_verdicts} verdicts on {s.n_prompts} prompts{coverage}); held-out reward "
        f"{_reward(e)}{eval_rm}; KL {_kl(e)}; length {growth} the base; "
        f"repetition {_num(e.repetition)}; flags: {flags}"
    )


def _rule_line(d: Decision) -> str:
    r = d.rule
    guard = (
        f"KL at most {r.max_kl_per_token:g} nats per token"
        if r.max_kl_per_token is not None
        else "no KL guard"
    )
    budget = f", at most {r.max_kl:g} nats per response" if r.max_kl is not None else ""
    metric = "length-controlled" if r.metric == "lc" else "prompt-adjusted"
    width = (
        f", an interval at most {r.max_interval_width:g} wide"
        if r.max_interval_width is not None
        else ""
    )
    prefer = (
        f"; the lowest KL per token among those within {r.delta:.2f} of the best"
        if r.prefer_lower_kl_within_delta
        else ""
    )
    return (
        f"Rule: among checkpoints judged on at least {r.min_prompts} prompts{width}, no hard "
        f"flag ({', '.join(r.hard_flags)}) and {guard}{budget}, the best {metric} human win "
        f"rate against the reference (shrunk towards 1/2 by {r.model.virtual_ties:g} virtual "
        f"ties){prefer}; practical margin delta = {r.delta:.2f}."
    )


def _probability(p: float) -> str:
    """A probability from a finite number of draws: never shown as certain."""
    return "> 0.99" if p > 0.99 else "< 0.01" if p < 0.01 else f"= {p:.2f}"


def _sureness(d: Decision) -> str:
    p, regret = d.p_within_delta or 0.0, d.expected_regret or 0.0
    return (
        f"P(it is within {d.rule.delta:.2f} of the best candidate) {_probability(p)}, expected "
        f"shortfall from the best {regret:.3f} win-rate points ({d.rule.n_boot} draws from the "
        f"posterior built on the joint prompt resamples)."
    )


def _runner_line(d: Decision, by_id: dict[int, Pair]) -> str:
    if d.runner_up is None:
        return "It is the only checkpoint that qualifies."
    e, s = by_id[d.runner_up]
    metric = s.metric(d.rule)
    if d.lower_kl_preferred:
        chosen_e, _ = by_id[d.choice]  # type: ignore[index]
        text = (
            f"The top estimate, {e.label} ({_iv(metric)}), is within {d.rule.delta:.2f}; the "
            f"choice is closer to the base (KL {_kl(chosen_e)} vs {_kl(e)}), so it is "
            f"preferred."
        )
    else:
        text = f"The runner-up is {e.label} ({_iv(metric)})."
    diff = d.runner_up_difference
    if diff is not None:
        text += (
            f" Choice minus runner-up: {diff.difference:+.3f} "
            f"[{diff.low:+.3f}, {diff.high:+.3f}], an interval that holds jointly for the "
            f"{diff.n_compared} comparisons with the other candidates "
            f"({diff.n_shared_prompts} prompts shared with the runner-up)."
        )
        if diff.low <= 0 <= diff.high:
            text += " The data cannot yet order the two."
    return text


def _style_reasons(ce: CheckpointEvidence, other: Pair) -> list[str]:
    """Length and repetition: what a reward model can be gamed with."""
    oe, os_ = other
    why = []
    if os_.win_rate and os_.lc_win_rate:
        drop = os_.win_rate.estimate - os_.lc_win_rate.estimate
        if drop > LENGTH_EFFECT:
            why.append(
                f"its raw win rate {os_.win_rate.estimate:.3f} falls to "
                f"{os_.lc_win_rate.estimate:.3f} once length is controlled: raters were "
                f"rewarding length"
            )
    og, cg = oe.length_growth, ce.length_growth
    if og is not None and cg is not None and og > cg * 1.1:
        why.append(f"its responses are x{og:.2f} the base's length (choice x{cg:.2f})")
    orep, crep = oe.repetition, ce.repetition
    if orep is not None and crep is not None and orep > crep + 0.02:
        why.append(f"it repeats more (seq-rep {orep:.3f} vs {crep:.3f})")
    return why


def _differences(d: Decision, chosen: Pair, other: Pair) -> list[str]:
    (ce, cs), (oe, os_) = chosen, other
    why = list(os_.reasons)
    mine, theirs = cs.metric(d.rule), os_.metric(d.rule)
    if mine is not None and theirs is not None:
        name = "length-controlled" if d.rule.metric == "lc" else "prompt-adjusted"
        ahead = d.beats.get(oe.checkpoint_id)
        share = f" (the choice is ahead in {ahead:.0%} of resamples)" if ahead is not None else ""
        why.append(
            f"its {name} win rate is {_iv(theirs)} against the choice's {mine.estimate:.3f}{share}"
        )
    why += _style_reasons(ce, other)
    if oe.kl is not None and ce.kl is not None and oe.kl.estimate > ce.kl.estimate:
        why.append(f"it is further from the base (KL {_kl(oe)} vs {_kl(ce)})")
    why += [
        f"between steps {a.before_step} and {a.after_step} the reward model's score rose while "
        f"the human win rate fell, both beyond their intervals"
        for a in d.alarms
        if a.after == oe.checkpoint_id and a.kind == "reward_up_humans_down"
    ]
    return why


def _contrast(d: Decision, by_id: dict[int, Pair], which: str) -> str:
    other_id = d.highest_reward if which == "highest" else d.last
    chosen = by_id[d.choice]  # type: ignore[index]
    title = "highest-reward checkpoint" if which == "highest" else "last checkpoint of the run"
    if other_id is None:
        return f"No {title} is known (no held-out reward yet)."
    if other_id == d.choice:
        reward = f" (held-out reward {_reward(chosen[0])})" if which == "highest" else ""
        return f"The choice is also the {title}{reward}."
    if which == "last" and other_id == d.highest_reward:
        return "The last checkpoint of the run is the highest-reward one above."
    other = by_id[other_id]
    why = _differences(d, chosen, other)
    head = f"The {title}, {other[0].label}"
    if which == "highest":
        head += f" (held-out reward {_reward(other[0])} vs the choice's {_reward(chosen[0])})"
    reason = "; ".join(why) if why else "no measured difference separates them"
    return f"{head}, is not recommended: {reason}. [{profile(*other)}]"


def explain(d: Decision, evidence: Sequence[CheckpointEvidence]) -> list[str]:
    """The explanation as sentences, first the choice, then the comparisons."""
    by_id = {e.checkpoint_id: (e, d.score(e.checkpoint_id)) for e in evidence}
    pairs = {k: (e, s) for k, (e, s) in by_id.items() if s is not None}
    lines = [_rule_line(d)]
    if d.choice is None:
        excluded = [
            f"{e.label}: {'; '.join(s.reasons) or 'no verdicts'}" for e, s in pairs.values()
        ]
        detail = (" " + " | ".join(excluded)) if excluded else ""
        problem = d.problem or "none is a candidate"
        return [*lines, f"No checkpoint qualifies: {problem}.{detail}"]
    e, s = pairs[d.choice]
    lines.append(f"Recommended: {e.label} (step {e.step}). {profile(e, s)}.")
    lines.append(_sureness(d))
    metric = s.metric(d.rule)
    if metric is not None and metric.low <= 0.5:
        lines.append(
            f"Caution: its interval reaches {metric.low:.3f}, so humans cannot yet tell it "
            f"apart from the reference; more verdicts would settle it."
        )
    lines.append(_runner_line(d, pairs))
    lines.append(_contrast(d, pairs, "highest"))
    lines.append(_contrast(d, pairs, "last"))
    return lines
