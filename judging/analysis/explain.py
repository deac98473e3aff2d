"""The recommendation's explanation, written from the numbers (no canned verdicts).

Always three parts: what was chosen and how sure we are; why not the highest-reward checkpoint;
why not the last checkpoint of the run. Each contrast names the evidence that separates them:
exclusion reasons, length-controlled vs raw human win rate, KL, length growth, repetition, flags,
the share of resamples in which the choice is ahead, and divergence alarms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from judging.stats.winrate import Interval

if TYPE_CHECKING:
    from judging.stats.recommend import CheckpointEvidence, CheckpointScore, Decision

# A raw-to-LC drop larger than this is called out as "won on length".
LENGTH_EFFECT = 0.03


def _iv(interval: Interval | None) -> str:
    if interval is None:
        return "n/a"
    return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _kl(e: CheckpointEvidence) -> str:
    return "n/a" if e.kl is None else f"{e.kl.estimate:.2f}"


def _reward(e: CheckpointEvidence) -> str:
    return "n/a" if e.reward is None else f"{e.reward.estimate:.3f}"


def profile(e: CheckpointEvidence, s: CheckpointScore) -> str:
    """One checkpoint's numbers in one line."""
    flags = ", ".join(e.flags) if e.flags else "none"
    growth = "n/a" if e.length_growth is None else f"x{e.length_growth:.2f}"
    eval_rm = f", evaluation reward {e.eval_reward.estimate:.3f}" if e.eval_reward else ""
    return (
        f"LC win rate {_iv(s.lc_win_rate)}, raw win rate {_iv(s.win_rate)} "
        f"({s.n_verdicts} verdicts on {s.n_prompts} prompts); held-out reward {_reward(e)}"
        f"{eval_rm}; KL {_kl(e)} nats; length {growth} the base; "
        f"repetition {_num(e.repetition)}; flags: {flags}"
    )


def _rule_line(d: Decision) -> str:
    r = d.rule
    budget = f"KL at most {r.max_kl:g} nats" if r.max_kl is not None else "no KL budget"
    metric = "length-controlled" if r.metric == "lc" else "raw"
    return (
        f"Rule: among checkpoints with at least {r.min_verdicts} verdicts, no hard flag "
        f"({', '.join(r.hard_flags)}) and {budget}, the best {metric} human win rate against "
        f"the reference; the lower-KL one when the top two intervals overlap."
    )


def _runner_line(d: Decision, by_id: dict[int, tuple[CheckpointEvidence, CheckpointScore]]) -> str:
    chosen_e, _ = by_id[d.choice]  # type: ignore[index]
    if d.runner_up is None:
        return "It is the only checkpoint that qualifies."
    e, s = by_id[d.runner_up]
    metric = s.metric(d.rule)
    if d.lower_kl_preferred:
        text = (
            f"The runner-up {e.label} has the higher point estimate ({_iv(metric)}) but the "
            f"intervals overlap and the choice is closer to the base (KL {_kl(chosen_e)} vs "
            f"{_kl(e)} nats), so the lower-KL checkpoint is preferred."
        )
    elif d.overlap:
        text = (
            f"The runner-up {e.label} ({_iv(metric)}) overlaps it; the runner-up is not closer "
            f"to the base (KL {_kl(e)} vs {_kl(chosen_e)} nats)."
        )
    else:
        text = f"Its interval lies above the runner-up {e.label}'s ({_iv(metric)})."
    if d.paired is not None:
        p = d.paired
        text += (
            f" Paired on {p.n_prompts} shared prompts, the raw win-rate difference is "
            f"{p.difference:+.3f} [{p.low:+.3f}, {p.high:+.3f}], sign-flip p = {p.p_value:.3f}."
        )
    return text


def _style_reasons(
    ce: CheckpointEvidence, oe: CheckpointEvidence, os_: CheckpointScore
) -> list[str]:
    """Length and repetition: what a reward model can be gamed with."""
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


def _differences(
    d: Decision, chosen: tuple[CheckpointEvidence, CheckpointScore],
    other: tuple[CheckpointEvidence, CheckpointScore],
) -> list[str]:  # fmt: skip
    (ce, cs), (oe, os_) = chosen, other
    why = list(os_.reasons)
    mine, theirs = cs.metric(d.rule), os_.metric(d.rule)
    if mine is not None and theirs is not None:
        name = "length-controlled" if d.rule.metric == "lc" else "raw"
        why.append(
            f"its {name} win rate is {_iv(theirs)} against the choice's {mine.estimate:.3f} "
            f"(the choice is ahead in {d.beats.get(oe.checkpoint_id, 0.0):.0%} of resamples)"
        )
    why += _style_reasons(ce, oe, os_)
    if oe.kl is not None and ce.kl is not None and oe.kl.estimate > ce.kl.estimate:
        why.append(f"it is further from the base (KL {_kl(oe)} vs {_kl(ce)} nats)")
    why += [
        f"between steps {a.before_step} and {a.after_step} the reward model's score rose while "
        f"the human win rate fell, both beyond their intervals"
        for a in d.alarms
        if a.after == oe.checkpoint_id and a.kind == "reward_up_humans_down"
    ]
    return why


def _contrast(
    d: Decision, by_id: dict[int, tuple[CheckpointEvidence, CheckpointScore]], which: str
) -> str:
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
    """The explanation as sentences, first the choice, then the two contrasts."""
    by_id = {e.checkpoint_id: (e, d.score(e.checkpoint_id)) for e in evidence}
    by_id_ok = {k: (e, s) for k, (e, s) in by_id.items() if s is not None}
    lines = [_rule_line(d)]
    if d.choice is None:
        excluded = [
            f"{e.label}: {'; '.join(s.reasons) or 'no verdicts'}" for e, s in by_id_ok.values()
        ]
        return [*lines, "No checkpoint qualifies. " + " | ".join(excluded)]
    e, s = by_id_ok[d.choice]
    confidence = d.confidence or 0.0
    lines.append(f"Recommended: {e.label} (step {e.step}). {profile(e, s)}.")
    lines.append(
        f"It is the best candidate in {confidence:.0%} of {d.rule.n_boot} prompt-clustered "
        f"bootstrap resamples."
    )
    metric = s.metric(d.rule)
    if metric is not None and metric.low <= 0.5:
        lines.append(
            f"Caution: its interval reaches {metric.low:.3f}, so humans cannot yet tell it "
            f"apart from the reference; more verdicts would settle it."
        )
    lines.append(_runner_line(d, by_id_ok))
    lines.append(_contrast(d, by_id_ok, "highest"))
    lines.append(_contrast(d, by_id_ok, "last"))
    return lines
