"""The shipped prompt sets (data/prompts) and the near-duplicate functions that vet them."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from judging.data.prompt_quality import (
    NEAR_DUPLICATE_THRESHOLD,
    ShingleIndex,
    exact_duplicates,
    find_near_duplicates,
    find_near_duplicates_within,
    jaccard,
    max_cross_similarity,
    shingles,
    words,
)

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "data" / "prompts"
CATEGORIES = {
    "explanation",
    "how-to",
    "advice",
    "creative-writing",
    "summarising",
    "comparison",
    "factual-question",
}


def _load(name: str) -> list[dict[str, str]]:
    lines = (PROMPTS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def train() -> list[dict[str, str]]:
    return _load("train")


@pytest.fixture(scope="module")
def heldout() -> list[dict[str, str]]:
    return _load("heldout")


# --- the similarity functions, on cases computed by hand -------------------------------------


def test_words_lowercase_and_drop_punctuation() -> None:
    assert words("What's the Capital of Peru?") == ["what's", "the", "capital", "of", "peru"]


def test_shingles_are_word_trigrams() -> None:
    assert shingles("The cat sat on the mat.") == {
        ("the", "cat", "sat"),
        ("cat", "sat", "on"),
        ("sat", "on", "the"),
        ("on", "the", "mat"),
    }


def test_short_text_is_one_shingle_and_empty_text_none() -> None:
    assert shingles("Hello, world") == {("hello", "world")}
    assert shingles("  ?! ") == frozenset()


def test_jaccard_by_hand() -> None:
    # {abc, bcd} vs {abc, bce}: one shared of three distinct -> 1/3
    assert jaccard(shingles("a b c d"), shingles("a b c e")) == pytest.approx(1 / 3)
    # {1,2,3,4} vs {3,4,5}: two shared of five distinct
    left = {("1",), ("2",), ("3",), ("4",)}
    right = {("3",), ("4",), ("5",)}
    assert jaccard(left, right) == pytest.approx(2 / 5)
    assert jaccard(left, left) == 1.0
    assert jaccard(left, {("9",)}) == 0.0
    assert jaccard(set(), set()) == 1.0


def test_threshold_is_inclusive() -> None:
    # 3 shingles each, 2 shared -> 2 / (3 + 3 - 2) = 0.5 exactly: a near-duplicate
    queries = ["the quick brown fox jumps"]
    corpus = ["the quick brown fox leaps", "nothing in common at all here"]
    found = find_near_duplicates(queries, corpus, threshold=0.5)
    assert [(d.left, d.right) for d in found] == [(0, 0)]
    assert found[0].similarity == pytest.approx(0.5)
    assert find_near_duplicates(queries, corpus, threshold=0.51) == []


def test_within_set_pairs_are_ordered_and_complete() -> None:
    texts = ["one two three four", "unrelated words only here", "one two three five", "one two"]
    found = find_near_duplicates_within(texts, threshold=0.3)
    assert [(d.left, d.right) for d in found] == [(0, 2)]


def test_index_agrees_with_brute_force() -> None:
    rng = random.Random(7)
    vocab = ["red", "green", "blue", "cat", "dog", "runs", "sits", "the", "a", "big"]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(2, 9))) for _ in range(60)]
    index = ShingleIndex()
    for text in texts[:40]:
        index.add(text)
    for query in texts[40:]:
        brute = [jaccard(shingles(query), shingles(t)) for t in texts[:40]]
        got = index.similarities(query)
        assert all(got.get(i, 0.0) == pytest.approx(b) for i, b in enumerate(brute))
        assert index.max_similarity(query)[1] == pytest.approx(max(brute))
    assert max_cross_similarity(texts[40:], texts[:40]) == pytest.approx(
        max(jaccard(shingles(q), shingles(t)) for q in texts[40:] for t in texts[:40])
    )


def test_exact_duplicates_ignore_case_and_whitespace() -> None:
    assert exact_duplicates(["Hello  World", "other", "hello world\n", "HELLO WORLD"]) == [
        (0, 2),
        (0, 3),
    ]


# --- the shipped files ------------------------------------------------------------------------


def test_sizes_fields_and_ids(train: list[dict[str, str]], heldout: list[dict[str, str]]) -> None:
    assert len(train) == 5000
    assert len(heldout) == 200
    for row in train + heldout:
        assert set(row) == {"id", "prompt", "category"}
        assert row["prompt"].strip() == row["prompt"] and row["prompt"]
        assert row["category"] in CATEGORIES
    ids = [row["id"] for row in train + heldout]
    assert len(set(ids)) == len(ids)


def test_every_category_in_both_sets_and_heldout_balanced(
    train: list[dict[str, str]], heldout: list[dict[str, str]]
) -> None:
    train_counts = Counter(row["category"] for row in train)
    held_counts = Counter(row["category"] for row in heldout)
    assert set(train_counts) == set(held_counts) == CATEGORIES
    assert max(held_counts.values()) - min(held_counts.values()) <= 1  # 28 or 29 each
    assert max(train_counts.values()) - min(train_counts.values()) <= 1


def test_no_exact_duplicates_within_or_across(
    train: list[dict[str, str]], heldout: list[dict[str, str]]
) -> None:
    texts = [row["prompt"] for row in train + heldout]
    assert exact_duplicates(texts) == []


def test_no_near_duplicates_across_splits(
    train: list[dict[str, str]], heldout: list[dict[str, str]]
) -> None:
    held = [row["prompt"] for row in heldout]
    corpus = [row["prompt"] for row in train]
    assert find_near_duplicates(held, corpus, NEAR_DUPLICATE_THRESHOLD) == []
    assert max_cross_similarity(held, corpus) < 0.35  # the build keeps a margin (limit 0.3)


def test_no_near_duplicates_within_a_set(
    train: list[dict[str, str]], heldout: list[dict[str, str]]
) -> None:
    for rows in (train, heldout):
        assert find_near_duplicates_within([row["prompt"] for row in rows]) == []


def test_summarising_prompts_contain_a_passage(heldout: list[dict[str, str]]) -> None:
    for row in heldout:
        if row["category"] == "summarising":
            assert "\n\n" in row["prompt"] and len(row["prompt"].split()) >= 40


def test_committed_files_equal_a_fresh_build() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_prompts.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
