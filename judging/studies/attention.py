"""Attention checks that look like real items and have one unambiguous answer.

A check pairs a *clean* response (finished, long enough, not looping, not a refusal; never a
collapsed checkpoint output where "both bad" would be the honest verdict) with one that is
clearly worse for a reason any attentive reader sees:

- off_topic: a clean response to a *different* prompt of the study;
- truncated: the same response cut after its first third, at a sentence end;
- shuffled: the same response with its sentences in a random order.

The worse side is built by slicing and permuting the original string, never by re-joining
words, so it keeps every line break, list marker and bit of markdown: rendered, it has the same
form as any other response and nothing but its content gives it away. Pure functions; the
caller passes a seeded `random.Random`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection

from judging.errors import ConflictError

MIN_WORDS = 8
MAX_REPEATED_4GRAMS = 0.2
# Split after a sentence end, keeping the whitespace; "1." list markers are not sentence ends.
_SENTENCE_BREAK = re.compile(r"(?<=[^\d\s][.!?])(\s+)|(?<=[^\d\s][.!?]\*\*)(\s+)")
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i cannot|i can't|as an ai)\b", re.I)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def repeated_4grams(text: str) -> float:
    """Share of word 4-grams that repeat an earlier one (0 for fresh text, near 1 for a loop)."""
    w = _words(text)
    grams = [tuple(w[i : i + 4]) for i in range(len(w) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def is_clean(text: str, finish_reason: str) -> bool:
    """Good enough to be the right answer of a check: finished, substantive, not looping."""
    return (
        finish_reason == "stop"
        and len(_words(text)) >= MIN_WORDS
        and repeated_4grams(text) <= MAX_REPEATED_4GRAMS
        and not _REFUSAL.match(text)
    )


def _pieces(text: str) -> tuple[list[str], list[str]]:
    """(sentences, the whitespace after each but the last), so that join restores the text."""
    parts = [p for p in _SENTENCE_BREAK.split(text) if p is not None]
    return parts[0::2], parts[1::2]


def _join(sentences: list[str], gaps: list[str]) -> str:
    out = [sentences[0]]
    for gap, sentence in zip(gaps, sentences[1:], strict=False):
        out += [gap, sentence]
    return "".join(out)


def _truncated(text: str, sentences: list[str], gaps: list[str]) -> str:
    if len(sentences) >= 3:
        keep = max(1, len(sentences) // 3)
        return _join(sentences[:keep], gaps[: keep - 1])
    # Too few sentences: cut after the first third of the words, inside the original string.
    spans = [m.end() for m in re.finditer(r"\S+", text)]
    keep = max(1, len(spans) // 3)
    return text[: spans[keep - 1]]


_MARKER = re.compile(r"((?:\d+[.)]|[-*+]|#{1,6})[ \t]+)?(.*)", re.S)


def _marker_and_content(sentence: str) -> tuple[str, str]:
    match = _MARKER.match(sentence)
    assert match is not None  # the pattern matches any string
    return match.group(1) or "", match.group(2)


def _shuffled(sentences: list[str], gaps: list[str], rng: random.Random) -> str:
    """Sentences in a new order; list markers and headings stay where the lines start."""
    slots, contents = zip(*(_marker_and_content(s) for s in sentences), strict=True)
    order = list(contents)
    while order == list(contents):
        rng.shuffle(order)
    return _join([slot + c for slot, c in zip(slots, order, strict=True)], gaps)


def degrade(
    text: str,
    rng: random.Random,
    decoy: str | None = None,
    avoid: Collection[str] = frozenset(),
) -> tuple[str, str]:
    """A clearly worse response in the same form: (text, how), how in off_topic/truncated/shuffled.

    `decoy` is a clean response to another prompt; without one the copy is cut or scrambled.
    `avoid`: whitespace-collapsed texts the result must not equal (already shown in the study).
    """
    body = text.strip()
    if not body:
        raise ConflictError("an attention check needs a non-empty response")
    sentences, gaps = _pieces(body)
    methods = ["truncated"]
    if len(sentences) >= 3 and len({_marker_and_content(s)[1] for s in sentences}) >= 2:
        methods.append("shuffled")
    if decoy and decoy.strip() and decoy.strip() != body:
        methods.append("off_topic")
    how = rng.choice(methods)
    text = _degraded(how, body, sentences, gaps, decoy, rng)
    # A worse text a rater already met elsewhere (two answers that open alike cut to the same
    # words) would show it twice: try the other ways before giving up.
    others = [m for m in methods if m != how]
    while " ".join(text.split()) in avoid and others:
        how = others.pop(0)
        text = _degraded(how, body, sentences, gaps, decoy, rng)
    if " ".join(text.split()) in avoid:
        raise ConflictError("every degraded copy of this response is already shown elsewhere")
    return text, how


def _degraded(
    how: str,
    body: str,
    sentences: list[str],
    gaps: list[str],
    decoy: str | None,
    rng: random.Random,
) -> str:
    if how == "off_topic":
        assert decoy is not None
        return decoy
    if how == "shuffled":
        return _shuffled(sentences, gaps, rng)
    return _truncated(body, sentences, gaps)
