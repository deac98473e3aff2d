"""Pure assignment logic: N distinct raters, balanced load, prompt spacing, fair sides."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from judging.errors import ConflictError
from judging.studies import assignment as plan


def _loads(result: dict[int, list[str]]) -> Counter[str]:
    return Counter(r for raters in result.values() for r in raters)


@pytest.mark.parametrize(
    ("comparisons", "raters", "n"), [(200, 2, 2), (97, 5, 2), (50, 7, 3), (13, 4, 1)]
)
def test_each_comparison_gets_n_distinct_raters_and_load_is_balanced(
    comparisons, raters, n
) -> None:
    names = [f"r{i}" for i in range(raters)]
    result = plan.assign_raters(list(range(comparisons)), names, n, random.Random(1))
    assert set(result) == set(range(comparisons))
    assert all(len(rs) == n and len(set(rs)) == n for rs in result.values())
    loads = _loads(result)
    assert sum(loads.values()) == comparisons * n
    assert max(loads.values()) - min(loads[r] for r in names) <= 1


def test_too_few_raters_is_refused() -> None:
    with pytest.raises(ConflictError, match="at least 3 raters"):
        plan.assign_raters([1, 2], ["a", "b"], 3, random.Random(0))


def test_existing_load_is_filled_up_first() -> None:
    result = plan.assign_raters(
        list(range(10)), ["a", "b", "c"], 1, random.Random(0), {"a": 6, "b": 0, "c": 2}
    )
    loads = _loads(result)
    final = {r: loads[r] + start for r, start in {"a": 6, "b": 0, "c": 2}.items()}
    assert loads["a"] == 0
    assert max(final.values()) - min(final.values()) <= 1


def test_order_never_puts_a_prompt_back_to_back() -> None:
    rng = random.Random(7)
    for _ in range(50):
        prompts = rng.randint(2, 40)
        checkpoints = rng.randint(1, 4)
        items = [
            ((p, c), p) for p in range(prompts) for c in range(checkpoints) if rng.random() < 0.9
        ]
        if len({p for _, p in items}) < 2:
            continue
        order = plan.order_queue(items, rng)
        assert sorted(order) == sorted(k for k, _ in items)
        assert plan.back_to_back([k[0] for k in order]) == 0


def test_order_respects_the_prompt_before_the_block() -> None:
    items = [(("a", 1), "a"), (("b", 1), "b"), (("a", 2), "a")]
    for seed in range(20):
        order = plan.order_queue(items, random.Random(seed), previous_prompt="a")
        # Only a-b-a avoids repeats, and "a" must not come first after a previous "a": impossible
        # in full, so the fewest repeats (one) are accepted, never two.
        assert plan.back_to_back(["a", *[k[0] for k in order]]) <= 1
    order = plan.order_queue(
        [(("b", 1), "b"), (("a", 1), "a")], random.Random(0), previous_prompt="a"
    )
    assert [k[0] for k in order] == ["b", "a"]


def test_order_interleaves_checkpoints() -> None:
    items = [((p, c), p) for p in range(60) for c in ("x", "y")]
    order = plan.order_queue(items, random.Random(3))
    first_half = Counter(c for _, c in order[:60])
    # A shuffle, not "all of x then all of y": both checkpoints appear early.
    assert 15 <= first_half["x"] <= 45


def test_sides_are_close_to_fifty_fifty() -> None:
    n = 20_000
    lefts = plan.draw_sides(n, random.Random(11)).count("left")
    # Binomial(n, 0.5): 4.5 standard deviations is a false-alarm rate below 1e-5.
    assert abs(lefts - n / 2) <= 4.5 * math.sqrt(n * 0.25)


def test_rebalance_moves_only_unstarted_work_and_keeps_raters_distinct() -> None:
    # 30 comparisons on raters 1 and 2; rater 3 joins. Comparisons 0-9 started (not movable).
    taken = {c: {1, 2} for c in range(30)}
    movable = [
        plan.Movable(100 + c * 2 + i, c, r) for c in range(10, 30) for i, r in enumerate((1, 2))
    ]
    moves = plan.plan_rebalance(movable, taken, {1: 30, 2: 30, 3: 0}, [1, 2, 3], random.Random(0))
    movable_ids = {m.assignment for m in movable}
    assert set(moves) <= movable_ids
    loads = {1: 30, 2: 30, 3: 0}
    comparison_of = {m.assignment: m for m in movable}
    holders = {c: set(rs) for c, rs in taken.items()}
    for aid, target in moves.items():
        item = comparison_of[aid]
        loads[item.rater] -= 1
        loads[target] += 1
        holders[item.comparison].discard(item.rater)
        assert target not in holders[item.comparison]
        holders[item.comparison].add(target)
    assert max(loads.values()) - min(loads.values()) <= 1
    assert all(len(h) == 2 for h in holders.values())


def test_handover_avoids_raters_already_on_the_comparison() -> None:
    taken = {1: {10, 20}, 2: {10, 30}, 3: {10, 20, 30}}
    movable = [plan.Movable(1, 1, 10), plan.Movable(2, 2, 10), plan.Movable(3, 3, 10)]
    moves, stuck = plan.plan_handover(movable, taken, {20: 5, 30: 5}, [20, 30], random.Random(0))
    assert moves == {1: 30, 2: 20}
    assert stuck == [3]


def test_attention_picks_the_requested_share() -> None:
    keys = list(range(200))
    chosen = plan.pick_attention(keys, 0.05, random.Random(0))
    assert len(chosen) == 10 and len(set(chosen)) == 10
    with pytest.raises(ConflictError):
        plan.pick_attention(keys, 1.5, random.Random(0))


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France. It lies on the Seine. It has many museums and cafes.",
        "Yes.",
        "A short answer with exactly nine words in it here.",
    ],
)
def test_degraded_copy_differs_from_the_original(text: str) -> None:
    for seed in range(10):
        degraded, how = plan.degrade(text, random.Random(seed))
        assert degraded != text
        assert how in ("truncated", "shuffled", "repeated")


def _sample(i: int, seed: int, text: str) -> plan.Sample:
    return plan.Sample(i, seed, text)


def test_each_checkpoint_gets_its_own_base_sample_never_on_a_shared_seed() -> None:
    candidates = {c: _sample(100 + c, 0, f"checkpoint {c}") for c in range(3)}
    base = [_sample(0, 0, "base seed 0"), *(_sample(i, i, f"base take {i}") for i in (1, 2, 3))]
    pairing, missing = plan.pair_with_base(candidates, base, random.Random(0))
    assert missing == 0 and set(pairing) == {0, 1, 2}
    assert len({s.id for s in pairing.values()}) == 3
    assert all(s.seed != 0 for s in pairing.values())  # the candidates' seed is never used


def test_missing_base_samples_are_counted_and_repeated_texts_go_last() -> None:
    candidates = {c: _sample(100 + c, 0, f"checkpoint {c}") for c in range(4)}
    base = [_sample(1, 1, "same"), _sample(2, 2, "  same "), _sample(3, 3, "other")]
    pairing, missing = plan.pair_with_base(candidates, base, random.Random(3))
    assert missing == 1 and len(pairing) == 3
    candidates = {c: _sample(100 + c, 0, f"checkpoint {c}") for c in range(2)}
    for seed in range(20):
        pairing, missing = plan.pair_with_base(candidates, base, random.Random(seed))
        assert missing == 0
        assert {plan.text_key(s.text) for s in pairing.values()} == {"same", "other"}


def test_no_rater_is_given_a_text_twice() -> None:
    # Comparisons 0 and 1 share a text: with two raters and two per comparison, one of them
    # can only get the raters that have not seen it (none), and says so by being short.
    texts = {0: frozenset({"a", "x"}), 1: frozenset({"b", "x"}), 2: frozenset({"c", "d"})}
    result = plan.assign_raters([0, 1, 2], ["r1", "r2", "r3"], 2, random.Random(0), texts=texts)
    for rater in ("r1", "r2", "r3"):
        shown = [k for c, rs in result.items() if rater in rs for k in texts[c]]
        assert len(shown) == len(set(shown))
    assert sorted(len(result[c]) for c in (0, 1)) == [1, 2] and len(result[2]) == 2
    short = plan.assign_raters(
        [0], ["r1", "r2"], 2, random.Random(0), texts=texts, seen={"r1": {"x"}}
    )
    assert short[0] == ["r2"]


def test_same_text_ignores_whitespace_only() -> None:
    assert plan.same_text("A  b\n c", "A b c")
    assert not plan.same_text("A b c", "a b c")


def test_replacement_is_least_loaded_eligible_rater() -> None:
    rng = random.Random(0)
    load = {"a": 5, "b": 1, "c": 0, "d": 0}
    seen = {"c": {"t1"}}
    # a holds it already, c has seen one of its texts: b or d, and d is idler.
    assert (
        plan.pick_replacement(["a", "b", "c", "d"], {"a"}, load, seen, frozenset({"t1"}), rng)
        == "d"
    )
    assert plan.pick_replacement(["a", "c"], {"a"}, load, seen, frozenset({"t1"}), rng) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((2, 2, 0), plan.Outcome("complete")),
        ((2, 1, 1), plan.Outcome("open")),
        ((2, 1, 0, ["flagged unsafe: pii"]), plan.Outcome("short", "flagged unsafe: pii")),
        ((2, 0, 0, [], "tie", "identical"), plan.Outcome("complete", "identical")),
        ((2, 1, 0, [], None, "skipped twice"), plan.Outcome("short", "skipped twice")),
        ((2, 1, 0), plan.Outcome("short", "no eligible rater was left to judge it")),
    ],
)
def test_comparison_outcome(args: tuple, expected: plan.Outcome) -> None:
    assert plan.comparison_outcome(*args) == expected


def test_base_sample_equal_to_a_checkpoint_text_goes_last() -> None:
    candidates = {0: _sample(100, 0, "shared answer"), 1: _sample(101, 0, "other answer")}
    base = [_sample(1, 1, "shared  answer"), _sample(2, 2, "base a"), _sample(3, 3, "base b")]
    for seed in range(20):
        pairing, missing = plan.pair_with_base(candidates, base, random.Random(seed))
        assert missing == 0 and {s.id for s in pairing.values()} == {2, 3}


def test_a_base_sample_serves_up_to_reuse_checkpoints_and_as_few_samples_as_needed() -> None:
    candidates = {c: _sample(100 + c, 0, f"checkpoint {c}") for c in range(7)}
    base = [_sample(i, i, f"base take {i}") for i in range(1, 6)]
    for seed in range(20):
        pairing, missing = plan.pair_with_base(candidates, base, random.Random(seed), reuse=3)
        uses = Counter(s.id for s in pairing.values())
        assert missing == 0 and set(pairing) == set(candidates)
        assert len(uses) == 3 and max(uses.values()) <= 3  # ceil(7 / 3) samples, none over 3
    pairing, missing = plan.pair_with_base(candidates, base[:2], random.Random(0), reuse=3)
    assert missing == 1 and len(pairing) == 6
    with pytest.raises(ConflictError):
        plan.pair_with_base(candidates, base, random.Random(0), reuse=0)


def test_raters_never_meet_a_shared_base_text_twice() -> None:
    # Six comparisons on one prompt share two base texts (reuse 3): each text needs three
    # disjoint pairs of raters, and six raters have exactly enough.
    texts = {c: frozenset({f"cand {c}", f"base {c // 3}"}) for c in range(6)}
    raters = [f"r{i}" for i in range(6)]
    for seed in range(20):
        result = plan.assign_raters(list(texts), raters, 2, random.Random(seed), texts=texts)
        for rater in raters:
            shown = [k for c, rs in result.items() if rater in rs for k in texts[c]]
            assert len(shown) == len(set(shown))
