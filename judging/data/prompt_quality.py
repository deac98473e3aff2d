"""Near-duplicate detection for prompt sets: word 3-gram shingles and their Jaccard similarity.

Two prompts are near-duplicates when the Jaccard similarity of their word-shingle sets is at or
above a threshold (0.5 by default). An inverted index over shingles means only pairs that share
at least one shingle are ever compared, so checking 200 x 5,000 pairs takes milliseconds and the
maximum over ALL pairs is still exact (pairs sharing nothing have similarity 0).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from judging.data.prompts import normalise

NEAR_DUPLICATE_THRESHOLD = 0.5
SHINGLE_SIZE = 3
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

Shingle = tuple[str, ...]


@dataclass(frozen=True)
class NearDuplicate:
    left: int
    right: int
    similarity: float


def words(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation is ignored."""
    return _WORD.findall(text.lower())


def shingles(text: str, size: int = SHINGLE_SIZE) -> frozenset[Shingle]:
    """The set of word `size`-grams; a text shorter than `size` words is one shingle."""
    tokens = words(text)
    if len(tokens) < size:
        return frozenset([tuple(tokens)]) if tokens else frozenset()
    return frozenset(tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1))


def jaccard(left: AbstractSet[Shingle], right: AbstractSet[Shingle]) -> float:
    """|A ∩ B| / |A ∪ B|; two empty sets count as identical."""
    if not left and not right:
        return 1.0
    shared = len(left & right)
    return shared / (len(left) + len(right) - shared)


class ShingleIndex:
    """Inverted index from shingle to the texts containing it, for fast similarity queries."""

    def __init__(self, size: int = SHINGLE_SIZE) -> None:
        self.size = size
        self.sets: list[frozenset[Shingle]] = []
        self._postings: dict[Shingle, list[int]] = defaultdict(list)

    def add(self, text: str) -> int:
        """Index a text and return its position."""
        position = len(self.sets)
        shingle_set = shingles(text, self.size)
        self.sets.append(shingle_set)
        for shingle in shingle_set:
            self._postings[shingle].append(position)
        return position

    def similarities(self, text: str) -> dict[int, float]:
        """Jaccard similarity of `text` to every indexed text sharing at least one shingle."""
        query = shingles(text, self.size)
        shared: Counter[int] = Counter()
        for shingle in query:
            shared.update(self._postings.get(shingle, ()))
        return {
            pos: count / (len(query) + len(self.sets[pos]) - count) for pos, count in shared.items()
        }

    def max_similarity(self, text: str) -> tuple[int | None, float]:
        """The most similar indexed text and its similarity (None, 0.0 when nothing is shared)."""
        scores = self.similarities(text)
        if not scores:
            return None, 0.0
        best = max(scores, key=lambda pos: (scores[pos], -pos))
        return best, scores[best]


def find_near_duplicates(
    queries: Sequence[str], corpus: Sequence[str], threshold: float = NEAR_DUPLICATE_THRESHOLD
) -> list[NearDuplicate]:
    """Every (query, corpus) pair with similarity >= threshold."""
    index = ShingleIndex()
    for text in corpus:
        index.add(text)
    found = []
    for left, text in enumerate(queries):
        for right, score in sorted(index.similarities(text).items()):
            if score >= threshold:
                found.append(NearDuplicate(left, right, score))
    return found


def find_near_duplicates_within(
    texts: Sequence[str], threshold: float = NEAR_DUPLICATE_THRESHOLD
) -> list[NearDuplicate]:
    """Every pair i < j inside one collection with similarity >= threshold."""
    index = ShingleIndex()
    found = []
    for right, text in enumerate(texts):
        for left, score in sorted(index.similarities(text).items()):
            if score >= threshold:
                found.append(NearDuplicate(left, right, score))
        index.add(text)
    return found


def max_cross_similarity(queries: Sequence[str], corpus: Sequence[str]) -> float:
    """The highest similarity between any query and any corpus text (exact, over all pairs)."""
    index = ShingleIndex()
    for text in corpus:
        index.add(text)
    return max((index.max_similarity(text)[1] for text in queries), default=0.0)


def exact_duplicates(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs (first, repeat) of texts equal after case and whitespace normalisation."""
    first: dict[str, int] = {}
    repeats = []
    for position, text in enumerate(texts):
        key = normalise(text)
        if key in first:
            repeats.append((first[key], position))
        else:
            first[key] = position
    return repeats
