"""Attention checks: the worse side looks like any response (same whitespace and markdown) and is
unambiguously worse; only clean responses are used to build them."""

from __future__ import annotations

import random
import re

import pytest

from judging.studies import attention

GOOD = (
    "Photosynthesis turns light into chemical energy in plants.\n\n"
    "1. Light reactions split water and release oxygen.\n"
    "2. The Calvin cycle fixes CO2 into sugar.\n\n"
    "In short: **light in, sugar out**. Plants then use the sugar to grow. "
    "Animals eat the plants, so the energy moves up the food chain."
)
OTHER_PROMPT = (
    "To change a bike tyre, first release the brake and remove the wheel.\n\n"
    "- Lever the tyre off the rim.\n- Swap the tube.\n\nPump it to the pressure on the sidewall."
)


def _shape(text: str) -> tuple[int, int, int]:
    """Newlines, markdown emphasis markers and list items: what a flattened copy loses."""
    return text.count("\n"), text.count("**"), len(re.findall(r"^\s*(?:\d+\.|-) ", text, re.M))


@pytest.mark.parametrize("seed", range(20))
def test_degraded_copy_keeps_the_formatting(seed: int) -> None:
    text, how = attention.degrade(GOOD, random.Random(seed))
    assert how in ("truncated", "shuffled")
    assert text != GOOD and text.strip()
    if how == "truncated":
        # A prefix of the original, cut at a sentence end: its own line breaks and markdown.
        assert GOOD.startswith(text) and len(text) <= 0.6 * len(GOOD)
        assert re.search(r"[.!?*]$", text)
        assert "\n" in text
    else:
        assert _shape(text) == _shape(GOOD)  # every line break, list item and ** stays
        assert sorted(re.split(r"\s+", text)) == sorted(re.split(r"\s+", GOOD))


def test_flattened_copies_are_gone() -> None:
    # The old degradation joined words with single spaces: a copy with no line breaks at all.
    for seed in range(20):
        text, _ = attention.degrade(GOOD, random.Random(seed))
        assert "\n" in text


def test_off_topic_decoy_is_used_verbatim() -> None:
    methods = set()
    for seed in range(30):
        text, how = attention.degrade(GOOD, random.Random(seed), decoy=OTHER_PROMPT)
        methods.add(how)
        if how == "off_topic":
            assert text == OTHER_PROMPT
    assert methods == {"off_topic", "truncated", "shuffled"}  # no single pattern to learn


def test_short_text_is_truncated_at_a_word_boundary() -> None:
    text, how = attention.degrade("One two three four five six seven eight nine.", random.Random(1))
    assert how == "truncated" and "One two three four five six seven eight nine.".startswith(text)
    assert len(text.split()) <= 4


@pytest.mark.parametrize(
    ("text", "finish", "ok"),
    [
        (GOOD, "stop", True),
        (GOOD, "length", False),  # cut off by the token limit: not a good response
        ("Too short to judge.", "stop", False),
        ("the cat sat on the mat " * 20, "stop", False),  # a collapsed, looping output
        ("I'm sorry, but I cannot help with that request at all today. " * 2, "stop", False),
        ("", "stop", False),
    ],
)
def test_is_clean(text: str, finish: str, ok: bool) -> None:
    assert attention.is_clean(text, finish) is ok
