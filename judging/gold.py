"""The gold preference: a transparent, deterministic stand-in for human taste (pure part).

The ground-truth simulation (AlpacaFarm, Dubois et al. 2023; Gao et al. 2022) needs a "true"
preference that PPO never sees. Ours scores one (prompt, response):

    gold = relevance - repetition - excess_length - truncation - refusal - sycophancy

`relevance` is the cosine similarity of the prompt's and the response's sentence embeddings
(all-MiniLM-L6-v2, computed in `training/gold.py`, the only part that needs torch). Every penalty
here is a plain function of the text, so a score can be explained term by term. Weights live in
`GoldWeights`; the defaults were set by hand so that each failure costs about as much as a
clearly off-topic answer (relevance drops from ~0.6 to ~0.1).

The same module holds the two noisy observers built on the gold score: the labellers of the
reward model's training pairs (label flips plus a length bias, the flaws of real preference data)
and the simulated raters of a study (Bradley-Terry choice with a position bias).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import asdict, dataclass

from judging.text import is_refusal, seq_rep_n, sycophancy_count, words


@dataclass(frozen=True)
class GoldWeights:
    repetition: float = 1.0
    """Multiplies seq-rep-4 (share of repeated word 4-grams, 0..1)."""
    excess_length: float = 0.25
    """Per 100% of words beyond the prompt's budget (see `length_budget`)."""
    excess_length_cap: float = 0.5
    """The length penalty never exceeds this."""
    truncation: float = 0.15
    """When the response stops mid-sentence (no closing punctuation)."""
    refusal: float = 0.5
    """When the response opens with a refusal phrase."""
    sycophancy: float = 0.1
    """Per flattering marker ("great question", ...)."""
    sycophancy_cap: float = 0.3


DEFAULT_WEIGHTS = GoldWeights()

GOLD_VERSION = "gold-v1-minilm-l6-v2"


def scorer_id(weights: GoldWeights = DEFAULT_WEIGHTS) -> str:
    """Names the scorer and its weights: stored gold scores of different scorers never mix."""
    digest = hashlib.sha256(json.dumps(asdict(weights), sort_keys=True).encode()).hexdigest()
    return f"{GOLD_VERSION}/{digest[:8]}"


_EXPLICIT_WORDS = re.compile(
    r"\b(?:under|in|within|at most|no more than|fewer than|about|around)\s+(\d+)\s+words", re.I
)
_SENTENCES = {"one sentence": 35, "two sentences": 60, "three sentences": 80, "a sentence": 35}
_SHORT_QUESTION = re.compile(
    r"^(?:.*?[,.]\s*)?(?:what|who|when|where|which|how many|how much)\b", re.I
)
_WORD = re.compile(r"\w+")
_FINAL = re.compile(r"""[.!?)"'\]*`:;>]\s*$|[\U0001f300-\U0001faff]\s*$""")


def length_budget(prompt: str) -> int:
    """Words the prompt needs at most: an explicit limit, a sentence count, or a default."""
    match = _EXPLICIT_WORDS.search(prompt)
    if match:
        return max(10, int(match.group(1)))
    lowered = prompt.lower()
    for phrase, budget in _SENTENCES.items():
        if phrase in lowered:
            return budget
    if "summar" in lowered or "main points" in lowered:
        return 80
    if len(words(prompt)) < 25 and prompt.rstrip().endswith("?") and _SHORT_QUESTION.match(prompt):
        return 60
    if "short" in lowered or "brief" in lowered or "quick" in lowered:
        return 120
    return 180


def word_count(text: str) -> int:
    """Words as a reader counts them: runs of letters and digits (punctuation not counted)."""
    return len(_WORD.findall(text))


def is_truncated(text: str) -> bool:
    """A response that stops mid-sentence: no closing punctuation at the end."""
    stripped = text.rstrip()
    return bool(stripped) and not _FINAL.search(stripped)


@dataclass(frozen=True)
class GoldScore:
    relevance: float
    repetition: float
    excess_length: float
    truncation: float
    refusal: float
    sycophancy: float

    @property
    def total(self) -> float:
        return self.relevance - (
            self.repetition + self.excess_length + self.truncation + self.refusal + self.sycophancy
        )

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def penalties(
    prompt: str, response: str, weights: GoldWeights = DEFAULT_WEIGHTS
) -> dict[str, float]:
    """Each penalty of one response, already weighted (all >= 0)."""
    budget = length_budget(prompt)
    excess = max(0.0, word_count(response) / budget - 1.0)
    empty = not response.strip()
    return {
        "repetition": weights.repetition * seq_rep_n(response, 4),
        "excess_length": min(weights.excess_length_cap, weights.excess_length * excess),
        "truncation": weights.truncation * (is_truncated(response) or empty),
        "refusal": weights.refusal * is_refusal(response),
        "sycophancy": min(weights.sycophancy_cap, weights.sycophancy * sycophancy_count(response)),
    }


def gold_score(
    prompt: str, response: str, relevance: float, weights: GoldWeights = DEFAULT_WEIGHTS
) -> GoldScore:
    """The gold score given the response's relevance (cosine similarity to the prompt)."""
    return GoldScore(relevance=relevance, **penalties(prompt, response, weights))


# --- the noisy observers -------------------------------------------------------------------------


@dataclass(frozen=True)
class LabellerSpec:
    """How the simulated labellers of the reward model's training pairs err."""

    flip: float = 0.25
    """AlpacaFarm's p_label_flip: with probability 2*flip the label becomes a coin flip."""
    length_bias: float = 0.1
    """Gold units added per 100 words of length advantage (labellers like longer answers)."""


def labeller_prefers_first(
    gold_a: float, gold_b: float, words_a: int, words_b: int, spec: LabellerSpec, rng: random.Random
) -> bool:
    """One simulated label: biased towards length, then flipped to a coin with prob. 2*flip."""
    biased = (gold_a - gold_b) + spec.length_bias * (words_a - words_b) / 100.0
    label = biased > 0 if biased != 0 else rng.random() < 0.5
    if rng.random() < 2 * spec.flip:
        label = rng.random() < 0.5
    return label


@dataclass(frozen=True)
class RaterSpec:
    """A simulated study rater: Bradley-Terry on the gold gap, with a pull to one side."""

    temperature: float = 0.08
    """Gold units per logit: the smaller, the more raters agree with gold (and each other)."""
    position_bias: float = 0.2
    """Logit added to the left response (0: no bias; humans lean left slightly)."""
    tie_margin: float = 0.0
    """|P(left) - 0.5| below this is answered 'tie' (0: never)."""


def p_left(gold_left: float, gold_right: float, spec: RaterSpec) -> float:
    """Probability that a simulated rater prefers the left response."""
    logit = (gold_left - gold_right) / max(spec.temperature, 1e-9) + spec.position_bias
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))


def rater_choice(gold_left: float, gold_right: float, spec: RaterSpec, rng: random.Random) -> str:
    """'left', 'right' or 'tie' for one item, drawn with `rng`."""
    p = p_left(gold_left, gold_right, spec)
    if abs(p - 0.5) < spec.tie_margin:
        return "tie"
    return "left" if rng.random() < p else "right"
