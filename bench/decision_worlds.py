"""Simulated worlds with a known truth, for judging selection rules (`bench/decision_bench.py`).

A *world* is a set of checkpoints with true curves drawn anew: each checkpoint's gold quality
(log-odds of being preferred to the reference on an average prompt), KL from the base, response
length, proxy reward and flags. A *study* of a world draws prompts and simulated rater verdicts:

    g[p, k] = quality[k] + a[p] + e[p, k]          a ~ N(0, prompt_sd), e ~ N(0, item_sd)
    P(rater prefers the checkpoint) = sigmoid(g + length_bias * tanh(delta / 150) +/- position)

`a[p]` is shared by every checkpoint on prompt p (a prompt where the reference is strong is hard
for all of them), which is why estimates of different checkpoints move together. The gold
preference has no length or position bias: a checkpoint's *gold win rate* is
E[sigmoid(quality + a + e)] over prompts (Gauss-Hermite quadrature), the quantity a rule should
maximise. The *limit* rule knows the noise-free sigmoid(g) of the judged prompts: only prompt
sampling is left to it.

Pure functions over numpy arrays; every draw comes from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

PROMPT_SD = 1.0
ITEM_SD = 2.0
"""Per-item spread of the preference: with PROMPT_SD it gives two raters of one pair 65-75%
agreement, the range reported for crowd raters on chat responses (AlpacaFarm, MT-Bench)."""
LENGTH_SD = 150.0
"""Spread of a response's length difference from the reference's (characters)."""
BASE_CHARS = 600.0
POSITION_BIAS = 0.3
"""Log-odds bonus for the response shown on the left."""
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)


def sigmoid(z: Array | float) -> Array:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float))))


def gold_win_rate(quality: Array, sd: float = float(np.hypot(PROMPT_SD, ITEM_SD))) -> Array:
    """E[sigmoid(quality + sd * Z)], Z standard normal, per checkpoint (quadrature)."""
    z = np.asarray(quality, dtype=float)[..., None] + sd * _NODES
    return np.asarray(sigmoid(z) @ _WEIGHTS / _WEIGHTS.sum())


@dataclass(frozen=True)
class World:
    family: str
    run: tuple[str, ...]
    step: NDArray[np.int64]
    quality: Array
    """Gold log-odds against the reference on an average prompt."""
    kl: Array
    """Nats per response."""
    tokens: Array
    """Mean response tokens."""
    length_shift: Array
    """Mean extra characters over the reference."""
    proxy: Array
    """Held-out proxy reward (what PPO optimised)."""
    length_bias: float
    """Raters' log-odds per unit of tanh(length difference / 150)."""
    sparse: dict[int, int] = field(default_factory=dict)
    """Checkpoint index -> the number of prompts it is judged on (others: all)."""

    @property
    def gold(self) -> Array:
        return gold_win_rate(self.quality)

    @property
    def n(self) -> int:
        return len(self.quality)

    def available(self, k: int, prompts: int) -> int:
        return self.sparse.get(k, prompts)

    def flags(self) -> list[tuple[str, ...]]:
        """What the evaluation's diagnostics would raise: length growth beyond 1.5x the base."""
        growth = 1 + self.length_shift / BASE_CHARS
        return [("length_growth>1.5",) if g > 1.5 else () for g in growth]


@dataclass(frozen=True)
class Study:
    """One simulated study: per (prompt, checkpoint) cell, verdicts and the length difference."""

    prompt: NDArray[np.int64]
    """(V,) prompt index of each verdict."""
    column: NDArray[np.int64]
    """(V,) checkpoint index of each verdict."""
    score: Array
    """(V,) 1 the checkpoint won, 0 it lost."""
    length_diff: Array
    """(V,) characters, checkpoint minus reference."""
    noise_free: Array
    """(P, K) gold preference probability of each judged pair; NaN where not judged."""


def _curve(kl: Array, kl_max: float, peak_at: float, height: float) -> Array:
    """Gao et al.'s best-of-n form d (alpha - beta d) in d = sqrt(KL), peaking at `peak_at` of
    the way along sqrt(kl_max) with `height` log-odds."""
    d, d_star = np.sqrt(kl), peak_at * np.sqrt(kl_max)
    return np.asarray(height * (2 * d / d_star - (d / d_star) ** 2))


def _run(rng: np.random.Generator, n: int, kl_max: float) -> Array:
    steps = np.arange(1, n + 1) / n
    return np.asarray(kl_max * steps**1.3 * rng.uniform(0.9, 1.1, n))


def _base(rng: np.random.Generator, family: str, quality: Array, kl: Array,
          tokens: float, bias: float = 0.0) -> World:  # fmt: skip
    n = len(quality)
    proxy = 0.4 * np.sqrt(kl) + rng.normal(0, 0.03, n)
    return World(
        family, ("run",) * n, np.arange(1, n + 1) * 10, quality, kl,
        np.full(n, tokens) * rng.uniform(0.95, 1.05, n), rng.normal(0, 20, n), proxy, bias,
    )  # fmt: skip


def _tokens_and_kl(rng: np.random.Generator) -> tuple[float, float]:
    """A run's response tokens and final KL: at most 0.2 nats per token, within the guard."""
    tokens = rng.uniform(80, 250)
    return tokens, tokens * rng.uniform(0.05, 0.2)


def steady(rng: np.random.Generator, n: int = 8) -> World:
    """Gold improves with every step (concave in sqrt(KL)): the last checkpoint is about best."""
    tokens, kl_max = _tokens_and_kl(rng)
    kl = _run(rng, n, kl_max)
    quality = rng.uniform(0.4, 1.5) * np.sqrt(kl / kl.max()) + rng.normal(0, 0.03, n)
    return _base(rng, "steady", quality, kl, tokens)


def gao_hump(rng: np.random.Generator, n: int = 8) -> World:
    """Gold rises then falls with sqrt(KL) while the proxy keeps rising (over-optimisation)."""
    tokens, kl_max = _tokens_and_kl(rng)
    kl = _run(rng, n, kl_max)
    quality = _curve(kl, kl_max, rng.uniform(0.3, 0.7), rng.uniform(0.4, 1.4))
    return _base(rng, "gao_hump", quality + rng.normal(0, 0.03, n), kl, tokens)


def flat(rng: np.random.Generator, n: int = 8) -> World:
    """Nothing beats the reference: every checkpoint is as good or slightly worse."""
    tokens, kl_max = _tokens_and_kl(rng)
    kl = _run(rng, n, kl_max)
    return _base(rng, "flat", -np.abs(rng.normal(0, 0.1, n)), kl, tokens)


def length_hacker(rng: np.random.Generator, n: int = 8) -> World:
    """The last one or two checkpoints write much more and are worse (gold does not reward
    length), but raters who like length prefer them and the proxy rewards them most."""
    world = gao_hump(rng, n)
    hackers = n - np.arange(1, rng.integers(1, 3) + 1)
    quality, shift, proxy = world.quality.copy(), world.length_shift.copy(), world.proxy.copy()
    quality[hackers] = world.quality.max() - rng.uniform(0.2, 0.6, len(hackers))
    shift[hackers] = rng.uniform(150, 450, len(hackers))
    proxy[hackers] = world.proxy.max() + rng.uniform(0.05, 0.2, len(hackers))
    return replace(world, family="length_hacker", quality=quality, length_shift=shift,
                   proxy=proxy, length_bias=float(rng.uniform(1.0, 2.0)))  # fmt: skip


def sparse(rng: np.random.Generator, n: int = 8) -> World:
    """One checkpoint, any of them, is judged on only 5-15 prompts."""
    world = gao_hump(rng, n)
    return replace(world, family="sparse", sparse={int(rng.integers(n)): int(rng.integers(5, 16))})


def two_runs(rng: np.random.Generator, n: int = 6) -> World:
    """Two runs with different KL coefficients and response lengths: the low-coefficient run
    moves fast, writes longer (raters like length) and its last checkpoint blows up to 0.3-0.6
    nats of KL per token: much longer answers that raters like and the gold does not."""
    runs, kls, qualities, tokens = [], [], [], []
    for name, kl_max, length in (
        ("low-kl-coef", rng.uniform(20, 40), rng.uniform(150, 250)),
        ("high-kl-coef", rng.uniform(4, 12), rng.uniform(50, 100)),
    ):
        kl = _run(rng, n, kl_max)
        if name == "low-kl-coef":
            kl[-1] = length * rng.uniform(0.3, 0.6)
        peak, height = rng.uniform(0.3, 0.9), rng.uniform(0.4, 1.4)
        runs += [name] * n
        kls.append(kl)
        qualities.append(_curve(kl, kl_max, peak, height))
        tokens.append(np.full(n, length))
    kl = np.concatenate(kls)
    quality = np.concatenate(qualities) + rng.normal(0, 0.03, 2 * n)
    shift = np.concatenate([rng.uniform(60, 160, n), rng.uniform(-40, 20, n)])
    quality[n - 1] = quality[:n].max() - rng.uniform(0.1, 0.5)
    shift[n - 1] = rng.uniform(250, 450)
    return World(
        "two_runs", tuple(runs), np.tile(np.arange(1, n + 1) * 10, 2), quality, kl,
        np.concatenate(tokens), shift, 0.4 * np.sqrt(kl) + rng.normal(0, 0.03, 2 * n),
        float(rng.uniform(0.5, 1.5)),
    )  # fmt: skip


def near_tie(rng: np.random.Generator, n: int = 8) -> World:
    """A hump whose best two checkpoints are within 0.01 log-odds (a near-tie at the top)."""
    world = gao_hump(rng, n)
    quality = world.quality.copy()
    order = np.argsort(quality)
    quality[order[-2]] = quality[order[-1]] - rng.uniform(0, 0.01)
    return replace(world, family="near_tie", quality=quality)


FAMILIES: dict[str, Callable[[np.random.Generator], World]] = {
    "steady": steady,
    "gao_hump": gao_hump,
    "flat": flat,
    "length_hacker": length_hacker,
    "sparse": sparse,
    "two_runs": two_runs,
    "near_tie": near_tie,
}


def draw_study(world: World, rng: np.random.Generator, n_prompts: int, raters: int) -> Study:
    """Verdicts of `raters` raters on every judged (prompt, checkpoint) pair."""
    a = rng.normal(0, PROMPT_SD, (n_prompts, 1))
    g = world.quality[None, :] + a + rng.normal(0, ITEM_SD, (n_prompts, world.n))
    delta = world.length_shift[None, :] + rng.normal(0, LENGTH_SD, (n_prompts, world.n))
    judged = np.ones((n_prompts, world.n), dtype=bool)
    for k, count in world.sparse.items():
        judged[min(count, n_prompts) :, k] = False
    p_idx, k_idx = np.nonzero(judged)
    p_idx, k_idx = np.repeat(p_idx, raters), np.repeat(k_idx, raters)
    side = rng.choice([-1.0, 1.0], size=len(p_idx))
    logit = g[p_idx, k_idx] + world.length_bias * np.tanh(delta[p_idx, k_idx] / LENGTH_SD)
    won = rng.random(len(p_idx)) < sigmoid(logit + POSITION_BIAS * side)
    noise_free = np.where(judged, sigmoid(g), np.nan)
    return Study(p_idx, k_idx, won.astype(float), delta[p_idx, k_idx], noise_free)


def rater_agreement(study: Study) -> float:
    """Share of same-pair rater pairs that agree (the first two verdicts of each pair)."""
    first, second = study.score[0::2], study.score[1::2]
    return float(np.mean(first == second))
