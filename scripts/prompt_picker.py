"""Seeded random choices that respect the train / held-out split of every pool of material."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

SUBJECT_HELDOUT_SHARE = 0.2
TEMPLATE_HELDOUT_SHARE = 0.3


def subject_key(item: object) -> str:
    """What identifies a subject: a string itself, the first field of a tuple, a function's name."""
    if isinstance(item, str):
        return item
    if isinstance(item, tuple):
        return subject_key(item[0])
    return str(getattr(item, "__name__", repr(item)))


class Picker:
    """Draws material for one split; each item of a pool belongs to exactly one split."""

    def __init__(self, split: str, seed: int) -> None:
        self.split = split
        self.seed = seed
        self.rng = random.Random(f"{seed}:{split}:draws")
        self._parts: dict[tuple[str, float], tuple[list[int], list[int]]] = {}
        self._pools: dict[tuple[str, float], list[object]] = {}
        self._uses: dict[tuple[str, str], float] = {}
        self._pending: list[tuple[str, str]] = []

    def _score(self, item: object) -> float:
        return random.Random(f"{self.seed}|{subject_key(item)}").random()

    def part(self, name: str, items: Sequence[T], share: float = SUBJECT_HELDOUT_SHARE) -> list[T]:
        """This split's share of a pool: the round(share * n) lowest seeded scores are held out.

        A pool of one item is shared (nothing to split). Scores depend only on (seed, key), so
        a subject that sits in two pools tends to land on the same side; `subject_conflicts`
        checks that it always does.
        """
        if len(items) == 1:
            return list(items)
        key = (name, share)
        if key not in self._parts:
            scores = [self._score(item) for item in items]
            order = sorted(range(len(items)), key=lambda i: (scores[i], i))
            cut = min(len(items) - 1, max(1, round(share * len(items))))
            self._parts[key] = (sorted(order[cut:]), sorted(order[:cut]))
            self._pools[key] = list(items)
        train, held = self._parts[key]
        return [items[i] for i in (held if self.split == "heldout" else train)]

    def subject_conflicts(self) -> list[str]:
        """Subject keys that are held out in one pool but used for training in another."""
        sides: dict[str, set[bool]] = {}
        for (name, share), (train, held) in self._parts.items():
            if share != SUBJECT_HELDOUT_SHARE:
                continue
            items = self._pools[(name, share)]
            for i in train + held:
                sides.setdefault(subject_key(items[i]), set()).add(i in held)
        return sorted(key for key, seen in sides.items() if len(seen) > 1)

    def pick(self, name: str, items: Sequence[T], share: float = SUBJECT_HELDOUT_SHARE) -> T:
        """A random item among the least-used of this split's share of a pool.

        Preferring the least-used item spreads the accepted prompts evenly over subjects and
        phrasings, which matters most for the small held-out shares. Use is counted by `settle`.
        """
        part = self.part(name, items, share)
        uses = [self._uses.get((name, subject_key(item)), 0.0) for item in part]
        fewest = min(uses)
        item = self.rng.choice([it for it, n in zip(part, uses, strict=True) if n == fewest])
        self._pending.append((name, subject_key(item)))
        return item

    def settle(self, accepted: bool) -> None:
        """Count the picks of the last prompt: fully if it was kept, a little if it was rejected.

        Counting rejections a little keeps an item that is always rejected from being
        retried forever, while a kept prompt moves the next picks on to other items.
        """
        weight = 1.0 if accepted else 0.25
        for key in self._pending:
            self._uses[key] = self._uses.get(key, 0.0) + weight
        self._pending.clear()

    def template(self, name: str, templates: Sequence[str]) -> str:
        """A phrasing template; held-out prompts use phrasings that training prompts never use."""
        return self.pick(name, templates, TEMPLATE_HELDOUT_SHARE)

    def any(self, items: Sequence[T]) -> T:
        """A random item from a pool shared by both splits (formats, tones, number words)."""
        return self.rng.choice(items)

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability


def cap(text: str) -> str:
    """Upper-case the first character only (keeps "DNS" and "iPhone" intact)."""
    return text[:1].upper() + text[1:]


def lower_first(text: str) -> str:
    """Lower-case the first character, for a question that follows "Quick question:"."""
    return text[:1].lower() + text[1:]


def a_or_an(word: str) -> str:
    """The indefinite article for a word, by its sound for the common exceptions."""
    lowered = word.lower()
    if lowered.startswith(("uni", "use", "euro", "one")):
        return "a"
    if lowered.startswith(("hour", "honest", "heir")):
        return "an"
    return "an" if lowered[:1] in "aeiou" else "a"


def tidy(text: str) -> str:
    """Collapse the double spaces and stray spaces an empty optional slot leaves behind."""
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return "\n".join(lines).strip()
