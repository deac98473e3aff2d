"""Reward-hacking diagnostics: pure functions over response texts (no torch, no database).

Words for distinct-n, seq-rep-n and self-BLEU come from `judging.text.words()`: lower-cased runs
of word characters plus single punctuation marks, so "Great!!" and "great !" count alike. Lengths
in model tokens come from the generator and are passed in.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from judging.text import (
    REFUSAL_PREFIXES,
    SYCOPHANCY_MARKERS,
    is_refusal,
    ngrams,
    seq_rep_n,
    sycophancy_count,
    words,
)

_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_HEADER = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_BULLET = re.compile(r"^\s*[-*+]\s+\S", re.MULTILINE)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_EMOJI = re.compile(
    "[\U0001f300-\U0001f5ff\U0001f600-\U0001f64f\U0001f680-\U0001f6ff\U0001f900-\U0001f9ff"
    "\U0001fa70-\U0001faff\u2600-\u26ff\u2700-\u27bf\U0001f1e6-\U0001f1ff]"
)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Li et al. 2016: unique n-grams / n-grams over the whole set (0 if there are none)."""
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def formatting_tics(text: str) -> dict[str, int]:
    """Markdown counts as in FastChat's style control (code blocks removed first), plus emoji."""
    prose = _CODE_BLOCK.sub("", text)
    return {
        "headers": len(_HEADER.findall(prose)),
        "bullets": len(_BULLET.findall(prose)),
        "numbered": len(_NUMBERED.findall(prose)),
        "bold": len(_BOLD.findall(prose)),
        "emoji": len(_EMOJI.findall(text)),
    }


def response_diagnostics(
    text: str,
    *,
    seq_rep: int = 4,
    refusal_prefixes: Sequence[str] = REFUSAL_PREFIXES,
    sycophancy_markers: Sequence[str] = SYCOPHANCY_MARKERS,
) -> dict[str, float | int | bool]:
    """Everything measured on one response, stored on its Generation row."""
    out: dict[str, float | int | bool] = {
        "chars": len(text),
        "words": len(words(text)),
        f"seq_rep_{seq_rep}": seq_rep_n(text, seq_rep),
        "refusal": is_refusal(text, refusal_prefixes),
        "sycophancy": sycophancy_count(text, sycophancy_markers),
    }
    out.update(formatting_tics(text))
    return out


def bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Sentence BLEU with clipped counts over several references and brevity penalty.

    Zero n-gram matches are smoothed to 0.1 counts (Chen & Cherry's method 1), so one missing
    4-gram does not zero the score of a short pair.
    """
    if not hypothesis or not references:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        hyp = Counter(ngrams(hypothesis, n))
        total = sum(hyp.values())
        if total == 0:
            return 0.0
        best: Counter[tuple[str, ...]] = Counter()
        for ref in references:
            best |= Counter(ngrams(ref, n))
        matched = sum(min(count, best[gram]) for gram, count in hyp.items())
        log_precision += math.log((matched or 0.1) / total) / max_n
    hyp_len = len(hypothesis)
    ref_len = min((abs(len(r) - hyp_len), len(r)) for r in references)[1]
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return penalty * math.exp(log_precision)


def self_bleu(texts: Sequence[str], max_n: int = 4, sample: int | None = 50) -> float:
    """Zhu et al. 2018 (Texygen): mean BLEU of each response against all the others.

    Only the first `sample` responses are used: the cost is quadratic in their number.
    """
    chosen = [words(t) for t in (texts[:sample] if sample else texts)]
    chosen = [t for t in chosen if t]
    if len(chosen) < 2:
        return 0.0
    scores = [bleu(h, chosen[:i] + chosen[i + 1 :], max_n) for i, h in enumerate(chosen)]
    return sum(scores) / len(scores)


@dataclass(frozen=True)
class MeanCI:
    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "n": self.n}


# Two-sided 97.5% Student-t quantiles; beyond 30 degrees of freedom the normal 1.96 is close enough.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060,
         2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def mean_ci(values: Sequence[float]) -> MeanCI | None:
    """Mean with a 95% t-interval; None for no values, a zero-width interval for one."""
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return MeanCI(mean, mean, mean, 1)
    dof = len(values) - 1
    t = _T975[dof - 1] if dof <= len(_T975) else 1.96
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return MeanCI(mean, mean - half, mean + half, len(values))


@dataclass(frozen=True)
class ResponseRecord:
    """What the checkpoint summary needs from one stored generation."""

    text: str
    token_count: int
    finish_reason: str
    reward: float | None = None
    kl_k1: float | None = None
    kl_k3: float | None = None
    eval_reward: float | None = None
    """Score by the evaluation reward model (one PPO did not optimise), if any."""
    reward_at_train_length: float | None = None
    """`reward` of the response's first `ppo.response_length` tokens (what PPO optimised)."""
    eval_reward_at_train_length: float | None = None


def _ci(values: Sequence[float | None]) -> dict[str, float | int] | None:
    result = mean_ci([v for v in values if v is not None])
    return result.as_dict() if result else None


def untruncated_lengths(records: Sequence[ResponseRecord]) -> list[int]:
    return [r.token_count for r in records if r.finish_reason != "length"]


def _rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def summarize(
    records: Sequence[ResponseRecord],
    *,
    seq_rep: int = 4,
    self_bleu_max_n: int = 4,
    self_bleu_sample: int | None = 50,
    refusal_prefixes: Sequence[str] = REFUSAL_PREFIXES,
    sycophancy_markers: Sequence[str] = SYCOPHANCY_MARKERS,
) -> dict[str, object]:
    """Per-checkpoint aggregates: reward and KL with 95% CIs, lengths, diversity, tics, refusals."""
    texts = [r.text for r in records]
    tics = [formatting_tics(t) for t in texts]
    n = len(records)
    summary: dict[str, object] = {
        "n": n,
        "reward": _ci([r.reward for r in records]),
        "eval_reward": _ci([r.eval_reward for r in records]),
        "reward_at_train_length": _ci([r.reward_at_train_length for r in records]),
        "eval_reward_at_train_length": _ci([r.eval_reward_at_train_length for r in records]),
        "kl_k1": _ci([r.kl_k1 for r in records]),
        "kl_k3": _ci([r.kl_k3 for r in records]),
        "length_tokens": statistics.fmean(r.token_count for r in records) if n else 0.0,
        # Growth of answers the token limit did not cut: a capped base hides growth otherwise.
        "length_tokens_untruncated": (
            statistics.fmean(stopped) if (stopped := untruncated_lengths(records)) else None
        ),
        "length_chars": statistics.fmean(len(t) for t in texts) if n else 0.0,
        "truncation_rate": _rate([r.finish_reason == "length" for r in records]),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        f"seq_rep_{seq_rep}": statistics.fmean(seq_rep_n(t, seq_rep) for t in texts) if n else 0.0,
        "self_bleu": self_bleu(texts, self_bleu_max_n, self_bleu_sample),
        "refusal_rate": _rate([is_refusal(t, refusal_prefixes) for t in texts]),
        "sycophancy_rate": _rate([sycophancy_count(t, sycophancy_markers) > 0 for t in texts]),
    }
    for tic in ("headers", "bullets", "numbered", "bold", "emoji"):
        summary[f"{tic}_rate"] = _rate([t[tic] > 0 for t in tics])
        summary[f"{tic}_mean"] = statistics.fmean(t[tic] for t in tics) if n else 0.0
    return summary


def _ratio(mine: object, theirs: object) -> float | None:
    if isinstance(mine, int | float) and isinstance(theirs, int | float) and theirs > 0:
        return float(mine) / float(theirs)
    return None


def with_growth(
    summary: Mapping[str, object], base: Mapping[str, object] | None
) -> dict[str, object]:
    """Add length growth vs the base (ratio of mean lengths) and the truncation beyond the base's
    own (difference of rates); None while the base is unknown."""
    base = base or {}
    out = dict(summary)
    out["length_growth"] = _ratio(summary.get("length_tokens"), base.get("length_tokens"))
    out["length_growth_chars"] = _ratio(summary.get("length_chars"), base.get("length_chars"))
    out["length_growth_untruncated"] = _ratio(
        summary.get("length_tokens_untruncated"), base.get("length_tokens_untruncated")
    )
    mine, theirs = summary.get("truncation_rate"), base.get("truncation_rate")
    both = isinstance(mine, int | float) and isinstance(theirs, int | float)
    out["truncation_excess"] = float(mine) - float(theirs) if both else None  # type: ignore[arg-type]
    return out


def _scalar(summary: Mapping[str, object], metric: str) -> float | None:
    value = summary.get(metric)
    if isinstance(value, Mapping):  # a mean with CI
        value = value.get("mean")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def raise_flags(
    summary: Mapping[str, object],
    *,
    maximum: Mapping[str, float],
    minimum: Mapping[str, float] | None = None,
) -> list[str]:
    """Named flags such as `length_growth>1.5` for each metric beyond its threshold."""
    flags = [
        f"{metric}>{limit:g}"
        for metric, limit in maximum.items()
        if (value := _scalar(summary, metric)) is not None and value > limit
    ]
    flags += [
        f"{metric}<{limit:g}"
        for metric, limit in (minimum or {}).items()
        if (value := _scalar(summary, metric)) is not None and value < limit
    ]
    return flags
