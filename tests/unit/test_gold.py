"""The gold preference's pure part: hand-made penalties, budgets and the noisy observers."""

from __future__ import annotations

import random

import pytest

from judging.gold import (
    GoldWeights,
    LabellerSpec,
    RaterSpec,
    gold_score,
    is_truncated,
    labeller_prefers_first,
    length_budget,
    p_left,
    penalties,
    rater_choice,
)

PROMPT = "How do I keep basil alive on a windowsill?"
GOOD = "Give it at least six hours of sun, water when the top soil is dry, and pinch off flowers."


def test_length_budget_reads_explicit_limits_and_short_questions() -> None:
    assert length_budget("Explain DNA replication. Keep it under 150 words.") == 150
    assert length_budget("How many inches are in a foot? Please answer in one sentence.") == 35
    assert length_budget("What is tabbouleh mainly made from?") == 60
    assert length_budget("Summarise the text below.\n\nThe council met on Monday.") == 80
    assert length_budget("Help me plan a week of vegetarian dinners for a family of four.") == 180


def test_truncation_is_a_missing_closing_punctuation() -> None:
    assert is_truncated("Water it daily and make sure the")
    assert not is_truncated("Water it daily.")
    assert not is_truncated('He said "done!"')
    assert not is_truncated("1. Sun\n2. Water\n3. **Pinch flowers**")


def test_clean_answer_has_no_penalty() -> None:
    assert sum(penalties(PROMPT, GOOD).values()) == 0.0


def test_repetitive_padded_truncated_refusing_flattering_answers_pay() -> None:
    repetitive = "Water the basil every day. " * 12
    assert penalties(PROMPT, repetitive)["repetition"] > 0.8
    padded = " ".join(["Basil likes sun and water."] * 80)  # 400 words against a 180 budget
    assert penalties(PROMPT, padded)["excess_length"] == pytest.approx(0.25 * (400 / 180 - 1))
    assert penalties(PROMPT, padded * 3)["excess_length"] == 0.5  # capped
    assert penalties(PROMPT, "Give it sun and")["truncation"] == 0.15
    assert penalties(PROMPT, "I'm sorry, I can't help with plants.")["refusal"] == 0.5
    flattering = "Great question! You're absolutely right to ask. " + GOOD
    assert penalties(PROMPT, flattering)["sycophancy"] == pytest.approx(0.2)


def test_excess_length_is_proportional_below_the_cap() -> None:
    words_270 = " ".join(["word"] * 270) + "."  # 50% over 180
    weights = GoldWeights(excess_length=0.25, excess_length_cap=10)
    got = penalties(PROMPT, words_270, weights)["excess_length"]
    assert got == pytest.approx(0.125)


def test_total_is_relevance_minus_penalties() -> None:
    score = gold_score(PROMPT, "Give it sun and", relevance=0.6)
    assert score.total == pytest.approx(0.6 - 0.15)
    assert score.as_dict()["total"] == pytest.approx(0.45)


def test_labeller_without_noise_follows_gold_and_length_bias() -> None:
    rng = random.Random(0)
    exact = LabellerSpec(flip=0.0, length_bias=0.0)
    assert labeller_prefers_first(0.5, 0.4, 10, 200, exact, rng)
    biased = LabellerSpec(flip=0.0, length_bias=0.1)  # 190 more words = +0.19 > 0.1 gold gap
    assert not labeller_prefers_first(0.5, 0.4, 10, 200, biased, rng)


def test_labeller_flip_rate_matches_alpacafarm() -> None:
    rng = random.Random(1)
    spec = LabellerSpec(flip=0.25, length_bias=0.0)
    wrong = sum(not labeller_prefers_first(1.0, 0.0, 10, 10, spec, rng) for _ in range(20000))
    assert wrong / 20000 == pytest.approx(0.25, abs=0.01)  # 2p coin flips, half of them wrong


def test_rater_follows_gold_with_bias_and_noise() -> None:
    spec = RaterSpec(temperature=0.1, position_bias=0.0)
    assert p_left(0.5, 0.5, spec) == pytest.approx(0.5)
    assert p_left(0.7, 0.5, spec) == pytest.approx(1 / (1 + 2.718281828**-2), rel=1e-6)
    leaning = RaterSpec(temperature=0.1, position_bias=0.4)
    assert p_left(0.5, 0.5, leaning) > 0.59
    rng = random.Random(2)
    picks = [rater_choice(0.9, 0.1, spec, rng) for _ in range(200)]
    assert picks.count("left") > 195
    ties = RaterSpec(temperature=0.1, position_bias=0.0, tie_margin=0.1)
    assert rater_choice(0.5, 0.51, ties, rng) == "tie"
