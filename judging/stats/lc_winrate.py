"""Win rates against the reference, fitted jointly over one study's checkpoints, and the joint
prompt bootstrap that every interval and every decision probability comes from.

A *cell* is one judged pair: a checkpoint's response and the reference's to one prompt; its
verdicts are scored for the checkpoint (1 won, 0 lost, 1/2 tie or both bad). Each (prompt,
checkpoint) weighs one in total, however many raters judged it: the prompt is the unit of
sampling (two raters of one pair see the same two texts).

The model of a cell's mean score y (a linear probability model):

    y - 1/2 = d_p + a_k + (b + b_k) * x,   x = tanh(delta / s)

- `delta` = checkpoint length - reference length (characters), `s` the standard deviation of
  delta over the study (AlpacaEval's standardiser); the tanh bounds one very long answer's pull.
- `a_k` is checkpoint k's advantage over the reference. Its prior is `virtual_ties`
  pseudo-verdicts, half won and half lost: the estimate is pulled towards 1/2 as if c prompts had
  been tied, so a sweep of a few prompts cannot outrank hundreds of verdicts, and in the bootstrap
  the pseudo-verdicts are resampled too, so a clean sweep keeps an interval of honest width
  (Agresti-Coull's "add two wins and two losses").
- `b + b_k` is the raters' taste for length as seen in checkpoint k's votes: a shared slope `b`
  and a per-checkpoint deviation `b_k` shrunk towards it (ridge `slope_ridge`). A length hacker is
  longer than the reference on nearly every prompt, so its own slope is barely identified and it
  borrows the study's; a checkpoint whose lengths vary around the reference's informs its own.
- `d_p` is the prompt's difficulty (ridge `prompt_ridge`): on a prompt where the reference is
  strong every checkpoint loses more. With checkpoints judged on different prompts (uneven
  coverage, adaptive allocation), it adjusts each one for the prompts it happened to get.

The *length-controlled* (LC) win rate is the model's prediction at equal lengths averaged over the
study's prompts, 1/2 + a_k + mean_p d_p; the *adjusted* win rate is the same model without length
terms (prompt difficulty and the prior only). Raw win rates are plain means of the votes.

Why linear and not AlpacaEval's logistic GLM: the quantity reported is an average win
probability, which the linear model estimates directly; its solution is linear in the votes, so a
bootstrap resample is one batched linear solve (no Newton iterations, no warm starts), and with
equal lengths and no prior it is exactly the raw win rate. The bounded feature keeps predictions
within [0, 1] in practice; they are not clipped, so that the estimator stays unbiased.

Joint bootstrap: every resample draws prompts with replacement (the same draw for every
checkpoint: they were judged on the same prompt set) and refits the model; the draws of all
checkpoints therefore move together, which is what paired comparisons and "P(the choice is within
delta of the best)" need. Pure numpy over plain data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from judging.stats.winrate import Interval

K = TypeVar("K", bound=Hashable)
Array = NDArray[np.float64]


@dataclass(frozen=True)
class LengthVote:
    """One verdict, scored for the checkpoint, with the length difference of the two responses."""

    prompt_id: Hashable
    score: float
    """1 the checkpoint won, 0 the reference won, 0.5 tie or both bad."""
    length_diff: float
    """Checkpoint response length minus reference response length (characters)."""


@dataclass(frozen=True)
class LCModel:
    """The model's priors; every field is stored with each recommendation."""

    virtual_ties: float = 8.0
    """Pseudo-verdicts per checkpoint, half won and half lost, in prompts' worth: an estimate on
    n prompts moves n / (n + c) of the way from 1/2 to what its votes say."""
    prompt_ridge: float = 2.0
    """Ridge on prompt difficulty, in cells: a prompt judged for m checkpoints keeps m / (m + r)
    of its apparent difficulty."""
    slope_ridge: float = 20.0
    """Ridge on each checkpoint's deviation from the shared length slope (in units of x^2)."""
    shared_slope_ridge: float = 1.0
    """Ridge on the shared length slope: keeps it finite when every longer answer won."""

    def __post_init__(self) -> None:
        for name in ("virtual_ties", "prompt_ridge", "slope_ridge", "shared_slope_ridge"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True)
class VoteTable:
    """One study's votes as arrays of cells (C cells, P prompts, K checkpoints)."""

    keys: tuple[Hashable, ...]
    prompts: tuple[Hashable, ...]
    prompt: NDArray[np.intp]
    """(C,) prompt index of each cell."""
    column: NDArray[np.intp]
    """(C,) checkpoint index of each cell."""
    x: Array
    """(C,) tanh(length difference / scale)."""
    score: Array
    """(C,) summed scores of the cell's verdicts."""
    votes: Array
    """(C,) number of verdicts in the cell."""
    weight: Array
    """(C,) the cell's share of its (prompt, checkpoint): every judged pair weighs one."""
    scale: float

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.prompts), len(self.keys)

    def per_prompt(self, values: Array) -> Array:
        """(P, K) sums of a per-cell quantity."""
        out = np.zeros(self.shape)
        np.add.at(out, (self.prompt, self.column), values)
        return out


def length_scale(diffs: Sequence[float]) -> float:
    """Standard deviation of the length differences (AlpacaEval's standardiser); 1 if degenerate."""
    if len(diffs) < 2:
        return 1.0
    sd = float(np.std(np.asarray(diffs, dtype=float), ddof=1))
    return sd if sd > 0 else 1.0


def vote_table(groups: Mapping[Hashable, Sequence[LengthVote]]) -> VoteTable | None:
    """Cells of the checkpoints that have votes; None when none has. Prompts are ordered by
    repr so that the same votes always give the same arrays (and the same resamples)."""
    voted = {k: vs for k, vs in groups.items() if vs}
    if not voted:
        return None
    keys = tuple(voted)
    scale = length_scale([v.length_diff for vs in voted.values() for v in vs])
    sums: dict[tuple[int, Hashable, float], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for k, vs in enumerate(voted.values()):
        for v in vs:
            acc = sums[(k, v.prompt_id, v.length_diff)]
            acc[0] += v.score
            acc[1] += 1.0
    prompts = tuple(sorted({p for _, p, _ in sums}, key=repr))
    where = {p: i for i, p in enumerate(prompts)}
    cells = list(sums.items())
    column = np.array([k for (k, _, _), _ in cells], dtype=np.intp)
    prompt = np.array([where[p] for (_, p, _), _ in cells], dtype=np.intp)
    diff = np.array([d for (_, _, d), _ in cells], dtype=float)
    score = np.array([s for _, (s, _) in cells], dtype=float)
    votes = np.array([n for _, (_, n) in cells], dtype=float)
    pair_votes = np.zeros((len(prompts), len(keys)))
    np.add.at(pair_votes, (prompt, column), votes)
    weight = votes / pair_votes[prompt, column]
    return VoteTable(keys, prompts, prompt, column, np.tanh(diff / scale), score, votes, weight,
                     scale)  # fmt: skip


# ---- the fit ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Moments:
    """Per-prompt sufficient statistics of the weighted least-squares problem.

    A cell's regressors are sparse: its checkpoint's advantage (1), and with length its
    checkpoint's slope deviation and the shared slope (both x). So every per-prompt sum the
    normal equations need comes from five (P, K) tables of weighted sums."""

    w: Array
    wx: Array
    wxx: Array
    wy: Array
    wxy: Array
    with_length: bool

    @classmethod
    def of(cls, table: VoteTable, with_length: bool) -> _Moments:
        w, x = table.weight, table.x
        y = table.score / table.votes - 0.5
        sums = [table.per_prompt(v) for v in (w, w * x, w * x * x, w * y, w * x * y)]
        return cls(sums[0], sums[1], sums[2], sums[3], sums[4], with_length)

    @property
    def u(self) -> Array:
        """(P, D) sum of w z per prompt."""
        if not self.with_length:
            return self.w
        return np.hstack([self.w, self.wx, self.wx.sum(axis=1, keepdims=True)])

    @property
    def zy(self) -> Array:
        """(P, D) sum of w z y per prompt."""
        if not self.with_length:
            return self.wy
        return np.hstack([self.wy, self.wxy, self.wxy.sum(axis=1, keepdims=True)])


def _gram(m: _Moments, counts: Array) -> Array:
    """(B, D, D) sum_p m_p sum_c w z z^T, assembled from its few nonzero blocks."""
    n_keys = m.w.shape[1]
    keys = np.arange(n_keys)
    width = 2 * n_keys + 1 if m.with_length else n_keys
    h = np.zeros((len(counts), width, width))
    h[:, keys, keys] = counts @ m.w
    if m.with_length:
        wx, wxx = counts @ m.wx, counts @ m.wxx
        slopes = keys + n_keys
        h[:, keys, slopes] = h[:, slopes, keys] = wx
        h[:, keys, -1] = h[:, -1, keys] = wx
        h[:, slopes, slopes] = h[:, slopes, -1] = h[:, -1, slopes] = wxx
        h[:, -1, -1] = wxx.sum(axis=1)
    return h


def _solve(
    m: _Moments, counts: Array, wins: Array, losses: Array, model: LCModel
) -> Array:  # fmt: skip
    """(B, K) win rates at equal lengths for B prompt weightings (counts, B x P) and prior
    weightings (wins, losses: B x K pseudo-verdicts).

    The prompt effects are centred (sum_p m_p d_p = 0, a multiplier nu), so that the level of a
    checkpoint lives in a_k alone and the prior on a_k shrinks the estimate itself. Each d_p
    touches one prompt's cells, so it is eliminated in closed form,
    d_p = g_p (t_p - u_p . theta - nu) with g_p = m_p / (m_p n_p + ridge), leaving per resample
    a (D + 1) system in (theta, nu):

        [ sum m A - f u u^T + priors   -f u ] [theta]   [ sum m g - f u t + prior ]
        [ -f u^T                        -f  ] [ nu  ] = [ -f t                    ]

    with f_p = m_p g_p, u_p = sum w z, t_p = sum w y over the prompt's cells."""
    u, n_p, t_p = m.u, m.w.sum(axis=1), m.wy.sum(axis=1)
    n_keys, width = m.w.shape[1], u.shape[1]
    denominator = counts * n_p + model.prompt_ridge
    gain = np.divide(counts, denominator, out=np.zeros_like(counts), where=denominator > 0)
    f = counts * gain  # (B, P)
    uu = (u[:, :, None] * u[:, None, :]).reshape(len(n_p), -1)
    h = np.zeros((len(counts), width + 1, width + 1))
    h[:, :width, :width] = _gram(m, counts) - (f @ uu).reshape(-1, width, width)
    fu = f @ u  # (B, D)
    h[:, :width, width] = h[:, width, :width] = -fu
    h[:, width, width] = -f.sum(axis=1)
    r = np.zeros((len(counts), width + 1))
    r[:, :width] = counts @ m.zy - f @ (u * t_p[:, None])
    r[:, width] = -(f @ t_p)
    diag = np.arange(n_keys)
    h[:, diag, diag] += wins + losses + 1e-9
    r[:, :n_keys] += 0.5 * (wins - losses)
    if m.with_length:
        slopes = np.arange(n_keys, 2 * n_keys)
        h[:, slopes, slopes] += model.slope_ridge + 1e-9
        h[:, width - 1, width - 1] += model.shared_slope_ridge + 1e-9
    theta = np.linalg.solve(h, r[:, :, None])[:, :, 0]  # (B, D + 1)
    rates: Array = 0.5 + theta[:, :n_keys]
    return rates


def _raw(table: VoteTable, counts: Array) -> Array:
    """(B, K) plain win rates (mean score of the drawn verdicts); NaN where none was drawn."""
    scores, votes = table.per_prompt(table.score), table.per_prompt(table.votes)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates: Array = (counts @ scores) / (counts @ votes)
    return rates


@dataclass(frozen=True)
class Estimates:
    """Point estimates (K,) and joint bootstrap draws (B, K) of one study's checkpoints."""

    keys: tuple[Hashable, ...]
    raw: Array
    adjusted: Array
    """Prompt difficulty and the prior, no length terms."""
    lc: Array
    raw_draws: Array
    """NaN where a resample drew none of a checkpoint's prompts."""
    adjusted_draws: Array
    lc_draws: Array
    n_prompts: NDArray[np.intp]
    n_votes: NDArray[np.intp]
    model: LCModel

    def column(self, key: Hashable) -> int:
        return self.keys.index(key)

    def intervals(self, which: str, level: float = 0.95) -> list[Interval]:
        """Percentile intervals of one metric ("raw", "adjusted", "lc"), in key order."""
        point: Array = getattr(self, which)
        draws: Array = getattr(self, f"{which}_draws")
        tail = (1 - level) / 2
        bounds = nan_quantiles(draws, (tail, 1 - tail))
        bounds = np.where(np.isnan(bounds), point, bounds)
        return [
            Interval(float(point[k]), float(bounds[0, k]), float(bounds[1, k]),
                     int(self.n_prompts[k]), int(self.n_votes[k]))
            for k in range(len(point))
        ]  # fmt: skip

    def interval(self, which: str, k: int, level: float = 0.95) -> Interval:
        """Percentile interval of one metric of checkpoint k."""
        return self.intervals(which, level)[k]


def nan_quantiles(draws: Array, qs: Sequence[float]) -> Array:
    """(len(qs), K) linear-interpolated quantiles of each column, NaNs left out (NaN for a column
    with none); `np.nanquantile` loops over columns in Python."""
    ordered = np.sort(draws, axis=0)  # NaN sorts last
    valid = (~np.isnan(ordered)).sum(axis=0)
    out = np.full((len(qs), draws.shape[1]), np.nan)
    cols = np.flatnonzero(valid)
    for row, q in enumerate(qs):
        pos = q * (valid[cols] - 1)
        lo, hi = np.floor(pos).astype(np.intp), np.ceil(pos).astype(np.intp)
        a, b = ordered[lo, cols], ordered[hi, cols]
        out[row, cols] = a + (b - a) * (pos - lo)
    return out


def prompt_draws(n_prompts: int, n_boot: int, rng: np.random.Generator) -> Array:
    """(B, P) how often each prompt is drawn in each resample (multinomial, P draws)."""
    drawn = rng.integers(0, n_prompts, size=(n_boot, n_prompts))
    flat = drawn + n_prompts * np.arange(n_boot)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boot * n_prompts)
    return counts.reshape(n_boot, n_prompts).astype(float)


def joint_bootstrap(
    groups: Mapping[Hashable, Sequence[LengthVote]],
    n_boot: int = 1000,
    seed: int = 0,
    model: LCModel | None = None,
) -> Estimates | None:
    """Raw, adjusted and LC win rates of every voted checkpoint, with `n_boot` joint resamples of
    the prompts (and of the prior's pseudo-verdicts); None without votes."""
    model = model or LCModel()
    table = vote_table(groups)
    if table is None:
        return None
    n_p, n_k = table.shape
    rng = np.random.default_rng(seed)
    counts = prompt_draws(n_p, n_boot, rng)
    wins = rng.poisson(model.virtual_ties / 2, size=(n_boot, n_k)).astype(float)
    losses = rng.poisson(model.virtual_ties / 2, size=(n_boot, n_k)).astype(float)
    ones, prior = np.ones((1, n_p)), np.full((1, n_k), model.virtual_ties / 2)
    fitted = {}
    for with_length in (False, True):
        m = _Moments.of(table, with_length)
        point = _solve(m, ones, prior, prior, model)[0]
        fitted[with_length] = point, _solve(m, counts, wins, losses, model)
    judged = table.per_prompt(table.votes) > 0
    return Estimates(
        keys=table.keys,
        raw=_raw(table, ones)[0],
        adjusted=fitted[False][0],
        lc=fitted[True][0],
        raw_draws=_raw(table, counts),
        adjusted_draws=fitted[False][1],
        lc_draws=fitted[True][1],
        n_prompts=judged.sum(axis=0),
        n_votes=table.per_prompt(table.votes).sum(axis=0).astype(np.intp),
        model=model,
    )


def lc_win_rate(votes: Sequence[LengthVote], model: LCModel | None = None) -> float | None:
    """One checkpoint's LC win rate (the prior included); None without votes."""
    fitted = joint_bootstrap({0: votes}, n_boot=1, model=model)
    return float(fitted.lc[0]) if fitted is not None else None


def lc_win_rate_intervals(
    groups: Mapping[K, Sequence[LengthVote]],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    model: LCModel | None = None,
) -> dict[K, Interval]:
    """LC win rate per checkpoint of one study (fitted jointly) with prompt-clustered percentile
    intervals; checkpoints without votes are left out."""
    fitted = joint_bootstrap(dict(groups.items()), n_boot, seed, model)
    return lc_intervals(fitted, groups, level) if fitted is not None else {}


def lc_intervals(fitted: Estimates, groups: Iterable[K], level: float = 0.95) -> dict[K, Interval]:
    """Percentile intervals of the LC draws of these checkpoints (those with votes)."""
    intervals = fitted.intervals("lc", level)
    return {k: intervals[fitted.column(k)] for k in groups if k in fitted.keys}
