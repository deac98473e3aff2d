"""Reward-hacking diagnostics against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from judging.evaluation.config import EvalConfig
from judging.evaluation.diagnostics import (
    ResponseRecord,
    bleu,
    distinct_n,
    formatting_tics,
    mean_ci,
    raise_flags,
    response_diagnostics,
    self_bleu,
    summarize,
    with_growth,
)
from judging.text import is_refusal, seq_rep_n, sycophancy_count, words


def test_words_lowercase_and_split_punctuation() -> None:
    assert words("Hello, World! hello") == ["hello", ",", "world", "!", "hello"]


def test_seq_rep_n() -> None:
    # bigrams ab ba ab ba ab: 5 in all, 2 unique -> 1 - 2/5
    assert seq_rep_n("a b a b a b", 2) == pytest.approx(0.6)
    assert seq_rep_n("a b c d e", 2) == 0.0
    assert seq_rep_n("a b c", 4) == 0.0  # no 4-gram at all


def test_distinct_n_over_the_set() -> None:
    assert distinct_n(["a b", "a c"], 1) == pytest.approx(3 / 4)
    assert distinct_n(["a b", "a c"], 2) == 1.0
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)
    assert distinct_n([""], 1) == 0.0


def test_formatting_tics_ignore_code_blocks() -> None:
    text = (
        "# Title\n- one\n* two\n1. first\n2) second\n**bold** and __also__ 😀🎉\n"
        "```\n# not a header\n- not a bullet\n```\n"
    )
    assert formatting_tics(text) == {
        "headers": 1,
        "bullets": 2,
        "numbered": 2,
        "bold": 2,
        "emoji": 2,
    }
    assert formatting_tics("plain text, #hashtag, 3.5 apples") == dict.fromkeys(
        ("headers", "bullets", "numbered", "bold", "emoji"), 0
    )


def test_refusal_is_a_prefix_match() -> None:
    assert is_refusal("  I\u2019m sorry, I can't help with that.")
    assert is_refusal("As an AI, I do not have opinions.")
    assert not is_refusal("Sure! I'm sorry to hear about your cat.")


def test_sycophancy_markers_are_counted_anywhere() -> None:
    assert sycophancy_count("Great question! Here it is. Another great question.") == 2
    assert sycophancy_count("Absolutely! What a fantastic question.") == 2
    assert sycophancy_count("The answer is 4.") == 0


def test_response_diagnostics_fields() -> None:
    diag = response_diagnostics("I cannot. I cannot. I cannot.", seq_rep=2)
    # words: i cannot . x3 -> 9 words, 8 bigrams, unique {i cannot, cannot ., . i} = 3
    assert diag["words"] == 9 and diag["chars"] == 29
    assert diag["seq_rep_2"] == pytest.approx(1 - 3 / 8)
    assert diag["refusal"] is True and diag["sycophancy"] == 0


def test_bleu_hand_computed() -> None:
    # p1 = 2/4, p2 = 1/3 (ab matches; bc, cd do not); hypothesis longer than reference: BP = 1.
    assert bleu(["a", "b", "c", "d"], [["a", "b", "e"]], 2) == pytest.approx(math.sqrt(0.5 / 3))
    # Perfect precision but half the reference length: BP = exp(1 - 4/2).
    assert bleu(["a", "b"], [["a", "b", "c", "d"]], 2) == pytest.approx(math.exp(-1))
    # No bigram match: smoothed to 0.1 counts -> sqrt(1 * 0.1).
    assert bleu(["a", "b"], [["b", "a"]], 2) == pytest.approx(math.sqrt(0.1))
    # Counts are clipped by the reference: "the" x3 against one "the".
    assert bleu(["the", "the", "the"], [["the", "cat"]], 1) == pytest.approx(1 / 3)
    # The closest reference length sets the brevity penalty (5 is closer to 4 than 2 is).
    refs = [["a", "b"], ["a", "b", "c", "d", "e"]]
    assert bleu(["a", "b", "c", "d"], refs, 1) == pytest.approx(math.exp(1 - 5 / 4))
    assert bleu(["a", "b", "c"], [["a", "b", "c"]], 4) == 0.0  # no 4-gram in the hypothesis


def test_self_bleu_hand_computed() -> None:
    # ab vs {ab, cd} = 1 twice; cd vs {ab, ab}: p1 = 0.1/2, p2 = 0.1/1 -> sqrt(0.005).
    expected = (1 + 1 + math.sqrt(0.05 * 0.1)) / 3
    assert self_bleu(["a b", "a b", "c d"], max_n=2) == pytest.approx(expected)
    assert self_bleu(["only one"], max_n=2) == 0.0
    assert self_bleu(["a b", "a b", "c d"], max_n=2, sample=2) == pytest.approx(1.0)


def test_mean_ci_t_interval() -> None:
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci is not None
    half = 4.303 * 1.0 / math.sqrt(3)  # t(0.975, 2 dof) * sd / sqrt(n)
    assert (ci.mean, ci.low, ci.high, ci.n) == pytest.approx((2.0, 2.0 - half, 2.0 + half, 3))
    assert mean_ci([5.0]) is not None and mean_ci([5.0]).as_dict()["ci_low"] == 5.0  # type: ignore[union-attr]
    assert mean_ci([]) is None
    big = mean_ci([0.0, 1.0] * 50)  # 100 values: normal quantile
    assert big is not None and big.high - big.mean == pytest.approx(1.96 * 0.5025 / 10, rel=1e-3)


def _records() -> list[ResponseRecord]:
    return [
        ResponseRecord("a b c", 3, "stop", 1.0, 0.2, 0.1),
        ResponseRecord("I'm sorry, I cannot", 5, "length", -1.0, 0.4, 0.3),
        ResponseRecord("Great question! **yes** 🎉", 7, "stop", 3.0, None, None),
    ]


def test_summarize_hand_computed() -> None:
    summary = summarize(_records(), seq_rep=2, self_bleu_max_n=2)
    assert summary["n"] == 3
    assert summary["reward"]["mean"] == pytest.approx(1.0)  # type: ignore[index]
    assert summary["kl_k1"]["n"] == 2 and summary["kl_k1"]["mean"] == pytest.approx(0.3)  # type: ignore[index]
    assert summary["length_tokens"] == pytest.approx(5.0)
    assert summary["length_chars"] == pytest.approx((5 + 19 + 25) / 3)
    assert summary["truncation_rate"] == pytest.approx(1 / 3)
    assert summary["refusal_rate"] == pytest.approx(1 / 3)
    assert summary["sycophancy_rate"] == pytest.approx(1 / 3)
    assert summary["bold_rate"] == pytest.approx(1 / 3) and summary["emoji_mean"] == pytest.approx(
        1 / 3
    )
    # Only the third repeats a bigram: great question ! * * yes * * 🎉 -> 8 bigrams, (*, *) twice.
    assert summary["seq_rep_2"] == pytest.approx((0 + 0 + 1 / 8) / 3)
    # unigrams: a b c | i ' m sorry , i cannot | great question ! * * yes * * 🎉(not a word char)
    all_words = [w for r in _records() for w in words(r.text)]
    assert summary["distinct_1"] == pytest.approx(len(set(all_words)) / len(all_words))


def test_growth_is_a_ratio_of_means_and_unknown_without_base() -> None:
    grown = with_growth(
        {"length_tokens": 30.0, "length_chars": 90.0}, {"length_tokens": 20.0, "length_chars": 60.0}
    )
    assert grown["length_growth"] == pytest.approx(1.5) and grown[
        "length_growth_chars"
    ] == pytest.approx(1.5)
    assert with_growth({"length_tokens": 30.0}, None)["length_growth"] is None


def test_truncation_is_flagged_beyond_the_bases_own() -> None:
    # SmolLM2 itself never stops within 640 tokens on about a fifth of the held-out prompts: an
    # absolute truncation limit flags the base and every checkpoint alike. The excess over the base
    # (same settings) is what a checkpoint that learned to run on adds.
    base = {"length_tokens": 300.0, "truncation_rate": 0.25}
    same = with_growth({"length_tokens": 310.0, "truncation_rate": 0.27}, base)
    worse = with_growth({"length_tokens": 420.0, "truncation_rate": 0.40}, base)
    assert same["truncation_excess"] == pytest.approx(0.02)
    assert worse["truncation_excess"] == pytest.approx(0.15)
    assert with_growth({"truncation_rate": 0.4}, None)["truncation_excess"] is None
    limits = EvalConfig().limits("max")
    assert "truncation_rate" not in limits
    assert raise_flags(with_growth(base, base), maximum=limits) == []
    assert raise_flags(same, maximum=limits) == []
    assert "truncation_excess>0.1" in raise_flags(worse, maximum=limits)


def test_flags_name_the_metric_and_threshold() -> None:
    summary = {
        "length_growth": 1.6,
        "truncation_rate": 0.1,
        "distinct_2": 0.1,
        "reward": {"mean": 3.0, "ci_low": 2.0, "ci_high": 4.0, "n": 3},
        "refusal_rate": None,
    }
    flags = raise_flags(
        summary,
        maximum={"length_growth": 1.5, "truncation_rate": 0.2, "reward": 2, "refusal_rate": 0.1},
        minimum={"distinct_2": 0.2},
    )
    assert flags == ["length_growth>1.5", "reward>2", "distinct_2<0.2"]
    assert raise_flags(summary, maximum={"length_growth": 1.6}) == []  # strictly beyond the limit
