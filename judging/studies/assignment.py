"""Pure assignment logic over plain data: who judges what, in which order, on which side.

Nothing here touches the database; `judging.studies.service` and the modules it builds on
(`pairing`, `queues`, `transfers`) feed it ids and write the results back.
Every function takes an explicit `random.Random` so tests can seed it and production can pass
`random.SystemRandom()` where unpredictability matters (the checkpoint side).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

from judging.errors import ConflictError

K = TypeVar("K", bound=Hashable)
R = TypeVar("R", bound=Hashable)
P = TypeVar("P", bound=Hashable)


def text_key(text: str) -> str:
    """What counts as "the same response" for a rater: equal after collapsing whitespace."""
    return " ".join(text.split())


def same_text(a: str, b: str) -> bool:
    return text_key(a) == text_key(b)


@dataclass(frozen=True)
class Sample:
    """One stored response: its generation id, sampling seed and text."""

    id: int
    seed: int
    text: str


def pair_with_base(
    candidates: Mapping[K, Sample],
    base: Sequence[Sample],
    rng: random.Random,
    blocked_seeds: Collection[int] = (),
    reuse: int = 1,
) -> tuple[dict[K, Sample], int]:
    """Give each checkpoint's response on one prompt a base response of its own, or one shared
    with at most `reuse - 1` other checkpoints.

    A base sample drawn with a seed some candidate used is not independent of it (an early
    checkpoint may even reproduce it word for word), so it is never eligible. Samples with
    distinct texts are used first, and as few as `reuse` allows. Sharing is blind only because
    `assign_raters` never shows a rater a text twice: the comparisons that share a base text go
    to disjoint raters, so nobody sees one base answer opposite two checkpoints (which would
    tell them which side is the base). Returns the pairing (candidates that got one) and how
    many base samples are missing. `blocked_seeds` are seeds already on screen for this prompt
    (earlier checkpoints of the study).
    """
    if reuse < 1:
        raise ConflictError(f"a base sample serves at least one comparison, got reuse={reuse}")
    taken_seeds = {c.seed for c in candidates.values()} | set(blocked_seeds)
    eligible = [b for b in base if b.seed not in taken_seeds]
    rng.shuffle(eligible)
    # A base text equal to some checkpoint's text on this prompt would be a repeat on screen.
    seen: set[str] = {text_key(c.text) for c in candidates.values()}
    fresh: list[Sample] = []
    repeats: list[Sample] = []
    for sample in eligible:
        key = text_key(sample.text)
        (repeats if key in seen else fresh).append(sample)
        seen.add(key)
    order = list(candidates)
    rng.shuffle(order)
    pool = fresh + repeats
    served = order[: len(pool) * reuse]
    pairing = {key: pool[i // reuse] for i, key in enumerate(served)}
    return pairing, len(order) - len(served)


def assign_raters(
    comparisons: Sequence[K],
    raters: Sequence[R],
    per_comparison: int,
    rng: random.Random,
    load: Mapping[R, int] | None = None,
    texts: Mapping[K, frozenset[str]] | None = None,
    seen: Mapping[R, set[str]] | None = None,
) -> dict[K, list[R]]:
    """Give each comparison `per_comparison` distinct raters, least-loaded first, ties at random.

    With `texts` (comparison -> keys of the texts it shows) a rater never gets a comparison
    showing a text they have already been given (`seen` holds what earlier assignments showed);
    a comparison then may get fewer raters than asked, and the caller records why.
    """
    if per_comparison < 1:
        raise ConflictError("raters per comparison must be at least 1")
    if len(set(raters)) < per_comparison:
        raise ConflictError(
            f"{per_comparison} raters per comparison need at least {per_comparison} raters, "
            f"got {len(set(raters))}"
        )
    counts: dict[R, int] = {r: (load or {}).get(r, 0) for r in dict.fromkeys(raters)}
    shown: dict[R, set[str]] = {r: set((seen or {}).get(r, set())) for r in counts}
    order = list(comparisons)
    rng.shuffle(order)
    result: dict[K, list[R]] = {}
    for key in order:
        keys = (texts or {}).get(key, frozenset())
        # A random key per rater breaks ties without favouring whoever was listed first.
        ranked = sorted(
            (r for r in counts if not keys & shown[r]), key=lambda r: (counts[r], rng.random())
        )
        chosen = ranked[:per_comparison]
        for r in chosen:
            counts[r] += 1
            shown[r] |= keys
        result[key] = chosen
    return result


def draw_sides(count: int, rng: random.Random) -> list[str]:
    """Independent fair coin per assignment: which side the checkpoint's response is shown on."""
    return [rng.choice(("left", "right")) for _ in range(count)]


def _top_two(counts: Counter[P]) -> tuple[P | None, int, int]:
    """(prompt with the highest count, highest count, second-highest count)."""
    best: P | None = None
    first = second = 0
    for prompt, count in counts.items():
        if count > first:
            best, first, second = prompt, count, first
        elif count > second:
            second = count
    return best, first, second


def _feasible_after(
    counts: Counter[P], remaining: int, pick: P, top: tuple[P | None, int, int]
) -> bool:
    """Can the rest be ordered with no prompt back-to-back once `pick` is placed next?"""
    rest = remaining - 1
    if rest == 0:
        return True
    best, first, second = top
    others = second if pick == best else first
    # The picked prompt cannot come first in the rest, so it fits only in every other slot.
    return others <= (rest + 1) // 2 and counts[pick] - 1 <= rest // 2


def order_queue(
    items: Sequence[tuple[K, P]],
    rng: random.Random,
    previous_prompt: P | None = None,
) -> list[K]:
    """Shuffle (item, prompt) pairs so that the same prompt never comes twice in a row.

    Each step draws a random remaining item among those that keep the rest arrangeable, so the
    order is as random as the constraint allows and checkpoints interleave. `previous_prompt` is
    the prompt just before this block (when appending to a queue). If no arrangement exists
    (one prompt fills more than half the queue) the fewest possible repeats are accepted.
    """
    by_prompt: dict[P, list[K]] = defaultdict(list)
    for key, prompt in items:
        by_prompt[prompt].append(key)
    for keys in by_prompt.values():
        rng.shuffle(keys)
    counts: Counter[P] = Counter({p: len(k) for p, k in by_prompt.items()})
    remaining, last, out = len(items), previous_prompt, []
    while remaining:
        top = _top_two(counts)
        allowed = [p for p, c in counts.items() if c > 0 and p != last]
        allowed = allowed or [p for p, c in counts.items() if c > 0]
        good = [p for p in allowed if _feasible_after(counts, remaining, p, top)]
        pool = good or sorted(allowed, key=lambda p: -counts[p])[:1]
        pick = rng.choices(pool, weights=[counts[p] for p in pool])[0]
        out.append(by_prompt[pick].pop())
        counts[pick] -= 1
        if counts[pick] == 0:
            del counts[pick]
        remaining -= 1
        last = pick
    return out


def back_to_back(prompts: Sequence[P]) -> int:
    """How many neighbours in a queue share a prompt (0 for a good order)."""
    return sum(1 for a, b in pairwise(prompts) if a == b)


@dataclass(frozen=True)
class Movable:
    """An assignment that may change hands: not yet started by its rater."""

    assignment: int
    comparison: int
    rater: int


def plan_rebalance(
    movable: Sequence[Movable],
    taken: Mapping[int, set[int]],
    load: Mapping[int, int],
    raters: Sequence[int],
    rng: random.Random,
) -> dict[int, int]:
    """Move unstarted assignments from the busiest raters to the idlest until loads differ by <= 1.

    `taken` maps comparison -> raters already on it (any status), so no rater gets one comparison
    twice; `load` counts every assignment per rater. Returns assignment -> new rater.
    """
    counts = {r: load.get(r, 0) for r in raters}
    holders = {c: set(rs) for c, rs in taken.items()}
    pool: dict[int, list[Movable]] = defaultdict(list)
    for m in movable:
        pool[m.rater].append(m)
    for items in pool.values():
        rng.shuffle(items)
    moves: dict[int, int] = {}
    while True:
        move = _one_move(pool, holders, counts, rng)
        if move is None:
            return moves
        item, target = move
        pool[item.rater].remove(item)
        holders[item.comparison].discard(item.rater)
        holders[item.comparison].add(target)
        counts[item.rater] -= 1
        counts[target] += 1
        moves[item.assignment] = target


def _one_move(
    pool: Mapping[int, list[Movable]],
    holders: Mapping[int, set[int]],
    counts: Mapping[int, int],
    rng: random.Random,
) -> tuple[Movable, int] | None:
    """The next move that narrows the load gap, or None when balanced or stuck."""
    donors = sorted(counts, key=lambda r: (-counts[r], rng.random()))
    takers = sorted(counts, key=lambda r: (counts[r], rng.random()))
    for donor in donors:
        for taker in takers:
            if counts[donor] - counts[taker] <= 1:
                break
            for item in pool.get(donor, []):
                if taker not in holders.get(item.comparison, set()):
                    return item, taker
    return None


def plan_handover(
    movable: Sequence[Movable],
    taken: Mapping[int, set[int]],
    load: Mapping[int, int],
    receivers: Sequence[int],
    rng: random.Random,
) -> tuple[dict[int, int], list[int]]:
    """Hand a leaving rater's unstarted work to the least-loaded receivers not already on it.

    Returns (assignment -> new rater, assignments nobody eligible could take).
    """
    counts = {r: load.get(r, 0) for r in receivers}
    holders = {c: set(rs) for c, rs in taken.items()}
    moves: dict[int, int] = {}
    stuck: list[int] = []
    for item in movable:
        eligible = [r for r in counts if r not in holders.get(item.comparison, set())]
        if not eligible:
            stuck.append(item.assignment)
            continue
        target = min(eligible, key=lambda r: (counts[r], rng.random()))
        counts[target] += 1
        holders.setdefault(item.comparison, set()).add(target)
        moves[item.assignment] = target
    return moves, stuck


def pick_attention(keys: Sequence[K], rate: float, rng: random.Random) -> list[K]:
    """Choose round(rate * len(keys)) comparisons to get an attention-check twin."""
    if not 0 <= rate <= 1:
        raise ConflictError(f"attention-check rate must be within 0..1, got {rate}")
    count = round(rate * len(keys))
    return rng.sample(list(keys), count)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def degrade(text: str, rng: random.Random) -> tuple[str, str]:
    """A visibly worse copy of a response: truncated, sentences shuffled, or repeated."""
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    words = text.split()
    methods = ["repeated"]
    if len(words) >= 8:
        methods.append("truncated")
    if len(sentences) >= 3 and len(set(sentences)) >= 2:
        methods.append("shuffled")
    method = rng.choice(methods)
    if method == "truncated":
        return " ".join(words[: max(2, len(words) // 3)]), method
    if method == "shuffled":
        shuffled = sentences[:]
        while shuffled == sentences:
            rng.shuffle(shuffled)
        return " ".join(shuffled), method
    chunk = " ".join(words[: max(3, min(12, len(words)))]) or "..."
    return " ".join([chunk] * 4), method


def pick_replacement(
    candidates: Sequence[R],
    holders: Collection[R],
    load: Mapping[R, int],
    seen: Mapping[R, set[str]],
    texts: frozenset[str],
    rng: random.Random,
) -> R | None:
    """Who takes over an item handed back to the pool: the least-loaded rater who is not on the
    comparison yet and has not been shown any of its texts (ties at random); None if nobody."""
    eligible = [r for r in candidates if r not in holders and not texts & seen.get(r, set())]
    if not eligible:
        return None
    return min(eligible, key=lambda r: (load.get(r, 0), rng.random()))


PARKED = "held back by adaptive allocation (released, not deleted: resuming serves it again)"


@dataclass(frozen=True)
class Outcome:
    """Where a comparison stands: complete (N live verdicts, or decided without humans), open
    (someone still holds it), parked (held back by adaptive allocation, not asked for now) or
    short (fewer than N verdicts, and `reason` says why)."""

    state: str
    reason: str | None = None


def comparison_outcome(
    needed: int,
    verdicts: int,
    open_items: int,
    flags: Sequence[str] = (),
    auto_choice: str | None = None,
    closed_reason: str | None = None,
    parked_items: int = 0,
) -> Outcome:
    if auto_choice is not None:
        return Outcome("complete", closed_reason)
    if verdicts >= needed:
        return Outcome("complete")
    if open_items:
        return Outcome("open")
    if parked_items:
        return Outcome("parked", PARKED)
    reasons = [*flags, *([closed_reason] if closed_reason else [])]
    return Outcome("short", "; ".join(reasons) or "no eligible rater was left to judge it")
