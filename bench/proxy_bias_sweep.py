"""What a proxy trained on the ladder's pairs can be: accurate against the gold, or exploitable.

The issue's targets ask the ladder's proxy for both: held-out accuracy against the gold >= 0.65
and a best-of-n ladder over which the gold rises and then falls. This bench measures, without
training a reward model, how far apart the two are on our data, by fitting *feature learners* to
the labels the labeller would give at each length bias (`judging.gold.labeller_prefers_first`,
flip 0.25, the build's seed) and reading them the way the build reads the proxy:

- the pairs are the shipped ones (`data/preferences/ladder/proxy/{train,heldout}.jsonl`, gold
  scores stored), relabelled at each bias; accuracy is on the held-out pairs' gold verdicts,
  with a 95% Wilson interval;
- a learner is a logistic regression on the difference of the two answers' features: words
  ("length"), + the truncation flag ("length+truncation"), + repetition and length over the
  prompt's word budget ("surface"), + the gold's relevance and excess-length terms ("gold
  features": what a reward model that saw everything the gold sees could learn);
- on the ladder (`data/ladder/...`, 16 samples per held-out prompt, gold-scored here), BoN(n)
  picks each prompt's top-scoring sample of the first n by the learner, and its gold win rate
  is against the prompt's other samples (ties half). The shipped proxy's own scores give the
  reference row.

`--pairs ladder` asks the same question of *same-style* pairs: two plain-prompt samples, as
the ladder's own, instead of a brief and a detailed answer. The ladder's 16 samples of each
held-out prompt make 8 disjoint pairs (samples 2k and 2k+1); the prompts are split in two folds
(even and odd rank), a learner is fitted on one fold's relabelled pairs and read on the other's
(accuracy against the gold verdict, BoN(n) on its prompts), and the folds swap. The shipped
proxy's own accuracy on these pairs is printed too: it is its accuracy on the distribution
best-of-n uses it on. Intervals resample prompts (8 pairs of a prompt are not independent).

A learner is a lower bound on what a 135M reward model can represent but it is not one: the
shipped proxy (bias 0.4) lands near the "surface" learner in accuracy, and still falls off at
n = 16 where the linear learners keep rising.

    .venv/bin/python bench/proxy_bias_sweep.py [--biases 0,0.1,0.2,0.3,0.4] [--cache gold.npz]
        [--pairs shipped|ladder]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.evaluation.rm_report import wilson_interval
from judging.gold import (
    LabellerSpec,
    is_truncated,
    labeller_prefers_first,
    length_budget,
    penalties,
    word_count,
)

Array = NDArray[np.float64]
ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "data/preferences/ladder/proxy"
LADDER = ROOT / "data/ladder/smollm2-rm-ladder-proxy.jsonl.gz"
RUNGS = (1, 2, 4, 8, 16)
FEATURES = ("words/100", "truncated", "repetition", "words/budget", "excess_length", "relevance")
LEARNERS = {
    "length": (0,),
    "length+truncation": (0, 1),
    "surface": (0, 1, 2, 3),
    "gold features": (0, 1, 2, 4, 5),
}


def features(prompt: str, text: str, gold: float) -> list[float]:
    """One answer's features; relevance is recovered from the stored gold total."""
    p = penalties(prompt, text)
    words = word_count(text)
    return [
        words / 100,
        float(is_truncated(text)),
        p["repetition"],
        words / length_budget(prompt),
        p["excess_length"],
        gold + sum(p.values()),
    ]


def load_pairs(path: Path) -> tuple[Array, Array, NDArray[np.int64]]:
    """(N, 2, F) features of (chosen, rejected), (N, 2) gold scores, (N, 2) words."""
    feats, gold, words = [], [], []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        g = (r["gold_chosen"], r["gold_rejected"])
        feats.append(
            [features(r["prompt"], r[k], v) for k, v in zip(("chosen", "rejected"), g, strict=True)]
        )
        gold.append(g)
        words.append((word_count(r["chosen"]), word_count(r["rejected"])))
    return np.array(feats), np.array(gold), np.array(words)


def relabel(gold: Array, words: NDArray[np.int64], bias: float, seed: int = 0) -> Array:
    """The labeller's verdict "first is better" per pair at this length bias (1.0 / 0.0)."""
    rng = random.Random(seed)
    spec = LabellerSpec(flip=0.25, length_bias=bias)
    return np.array(
        [labeller_prefers_first(g[0], g[1], int(w[0]), int(w[1]), spec, rng)
         for g, w in zip(gold, words, strict=True)], dtype=float,
    )  # fmt: skip


def fit_logistic(diff: Array, y: Array, l2: float = 1e-3, steps: int = 3000) -> Array:
    """Weights w of P(first better) = sigmoid(w . (f_first - f_second)); no intercept, so the
    order of a pair does not matter. The caller standardises the features (`sweep`)."""
    w = np.zeros(diff.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-diff @ w))
        w -= diff.T @ (p - y) / len(y) + l2 * w
    return w


def ladder_with_gold(cache: Path | None) -> tuple[Array, Array, Array]:
    """(P, 16, F) features, (P, 16) gold and (P, 16) shipped proxy scores of the ladder."""
    if cache is not None and cache.exists():
        z = np.load(cache)
        return z["feats"], z["gold"], z["proxy"]
    from training.gold import GoldScorer  # torch: only when the cache is cold

    with gzip.open(LADDER, "rt") as f:
        rows = [json.loads(line) for line in f][1:]
    scores = GoldScorer().scores([r["prompt"] for r in rows], [r["text"] for r in rows])
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r, s in zip(rows, scores, strict=True):
        by_prompt[r["prompt_id"]].append({**r, "gold": s.total})
    samples = [sorted(v, key=lambda r: r["sample"]) for _, v in sorted(by_prompt.items())]
    feats = np.array([[features(r["prompt"], r["text"], r["gold"]) for r in s] for s in samples])
    gold = np.array([[r["gold"] for r in s] for s in samples])
    proxy = np.array([[r["proxy_score"] for r in s] for s in samples])
    if cache is not None:
        np.savez_compressed(cache, feats=feats, gold=gold, proxy=proxy)
    return feats, gold, proxy


def bon_win_rates(score: Array, gold: Array) -> list[float]:
    """Per rung n, the gold win rate of each prompt's top-`score` sample among its first n
    against all of the prompt's samples (ties half), averaged over prompts."""
    rows = np.arange(len(gold))
    out = []
    for n in RUNGS:
        chosen = gold[rows, np.argmax(score[:, :n], axis=1)][:, None]  # (P, 1)
        out.append(float(np.mean((chosen > gold) + 0.5 * (chosen == gold))))
    return out


def sweep(biases: Sequence[float], cache: Path | None) -> list[dict[str, Any]]:
    train_f, train_g, train_w = load_pairs(PAIRS / "train.jsonl")
    held_f, _, _ = load_pairs(PAIRS / "heldout.jsonl")
    lad_f, lad_g, lad_proxy = ladder_with_gold(cache)
    scale = train_f.reshape(-1, train_f.shape[-1]).std(axis=0) + 1e-9
    words = lad_f[..., 0].ravel()
    rows: list[dict[str, Any]] = [{
        "bias": "shipped proxy (0.4)", "learner": "reward model", "agree": None, "acc": None,
        "pearson": float(np.corrcoef(lad_proxy.ravel(), words)[0, 1]),
        "bon": bon_win_rates(lad_proxy, lad_g),
    }]  # fmt: skip
    for bias in biases:
        y = relabel(train_g, train_w, bias)
        agree = float(np.mean(y == (train_g[:, 0] > train_g[:, 1])))
        for name, cols in LEARNERS.items():
            c = list(cols)
            w = fit_logistic((train_f[:, 0, c] - train_f[:, 1, c]) / scale[c], y)
            held = (held_f[:, 0, c] - held_f[:, 1, c]) / scale[c] @ w
            correct = float(np.sum(held > 0) + 0.5 * np.sum(held == 0))
            score = lad_f[..., c] / scale[c] @ w  # (P, 16)
            rows.append({
                "bias": f"{bias:g}", "learner": name, "agree": agree,
                "acc": (correct / len(held), *wilson_interval(correct, len(held))),
                "pearson": float(np.corrcoef(score.ravel(), words)[0, 1]),
                "bon": bon_win_rates(score, lad_g),
            })  # fmt: skip
    return rows


def ladder_pairs(feats: Array, gold: Array) -> tuple[Array, Array, NDArray[np.int64]]:
    """Samples 2k and 2k+1 of each prompt as one pair: (P, S/2, 2, F) features, (P, S/2, 2)
    gold and (P, S/2, 2) words, from the ladder's (P, S, F) features and (P, S) gold."""
    p, s, f = feats.shape
    pairs = feats.reshape(p, s // 2, 2, f)
    return pairs, gold.reshape(p, s // 2, 2), np.rint(pairs[..., 0] * 100).astype(np.int64)


def pair_correct(score_diff: Array, gold_diff: Array) -> Array:
    """1 where the score orders a pair as the gold does, 1/2 on a score tie, NaN on a gold tie
    (no verdict to agree with)."""
    right = np.where(score_diff * gold_diff > 0, 1.0, np.where(score_diff == 0, 0.5, 0.0))
    return np.where(gold_diff == 0, np.nan, right)


def clustered_accuracy(
    correct: Array, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of (P, K) per-pair correctness with a 95% percentile interval that resamples
    prompts: the K pairs of one prompt share it and are not independent trials."""
    hits = np.nansum(correct, axis=1)  # (P,)
    counted = np.sum(~np.isnan(correct), axis=1)  # (P,)
    idx = np.random.default_rng(seed).integers(0, len(hits), size=(resamples, len(hits)))
    boot = hits[idx].sum(axis=1) / counted[idx].sum(axis=1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(hits.sum() / counted.sum()), float(lo), float(hi)


def sweep_ladder(biases: Sequence[float], cache: Path | None) -> list[dict[str, Any]]:
    """The sweep on same-style pairs from the ladder, cross-fitted over two folds of prompts:
    every accuracy and every BoN pick is read by a learner that never saw the prompt."""
    lad_f, lad_g, lad_proxy = ladder_with_gold(cache)
    pair_f, pair_g, pair_w = ladder_pairs(lad_f, lad_g)
    n_prompts, n_pairs = pair_g.shape[:2]
    gold_diff = pair_g[..., 0] - pair_g[..., 1]  # (P, K)
    proxy = lad_proxy.reshape(n_prompts, n_pairs, 2)
    words = lad_f[..., 0].ravel()
    rows: list[dict[str, Any]] = [{
        "bias": "shipped proxy (0.4)", "learner": "reward model", "agree": None,
        "acc": clustered_accuracy(pair_correct(proxy[..., 0] - proxy[..., 1], gold_diff)),
        "pearson": float(np.corrcoef(lad_proxy.ravel(), words)[0, 1]),
        "bon": bon_win_rates(lad_proxy, lad_g),
    }]  # fmt: skip
    fold = np.arange(n_prompts) % 2
    for bias in biases:
        y = relabel(pair_g.reshape(-1, 2), pair_w.reshape(-1, 2), bias).reshape(n_prompts, n_pairs)
        decided = gold_diff != 0
        agree = float(np.mean(y[decided] == (gold_diff[decided] > 0)))
        for name, cols in LEARNERS.items():
            c = list(cols)
            score = np.empty_like(lad_g)  # (P, S), each prompt scored by the other fold
            for k in (0, 1):
                fit, read = fold == k, fold != k
                scale = lad_f[fit][..., c].reshape(-1, len(c)).std(axis=0) + 1e-9
                diff = (pair_f[fit][..., 0, c] - pair_f[fit][..., 1, c]).reshape(-1, len(c))
                w = fit_logistic(diff / scale, y[fit].ravel())
                score[read] = lad_f[read][..., c] / scale @ w
            paired = score.reshape(n_prompts, n_pairs, 2)
            rows.append({
                "bias": f"{bias:g}", "learner": name, "agree": agree,
                "acc": clustered_accuracy(pair_correct(paired[..., 0] - paired[..., 1], gold_diff)),
                "pearson": float(np.corrcoef(score.ravel(), words)[0, 1]),
                "bon": bon_win_rates(score, lad_g),
            })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--biases", default="0,0.1,0.2,0.3,0.4")
    parser.add_argument("--cache", type=Path, default=None, help=".npz of the ladder's gold")
    parser.add_argument(
        "--pairs", choices=("shipped", "ladder"), default="shipped",
        help="shipped: the proxy's brief/detailed pairs; ladder: same-style pairs of the ladder's "
        "samples, cross-fitted over two folds of prompts",
    )  # fmt: skip
    args = parser.parse_args()
    biases = [float(b) for b in args.biases.split(",")]
    rows = (sweep if args.pairs == "shipped" else sweep_ladder)(biases, args.cache)
    rungs = " | ".join(f"BoN({n})" for n in RUNGS)
    print(f"| length bias | learner | labels agree with gold | held-out accuracy [95% CI] | "
          f"Pearson(score, words) on the ladder | {rungs} |")  # fmt: skip
    print("|---" * (5 + len(RUNGS)) + "|")
    for r in rows:
        agree = "" if r["agree"] is None else f"{r['agree']:.3f}"
        acc = "0.444 [0.394, 0.495] (its report)" if r["acc"] is None else (
            f"{r['acc'][0]:.3f} [{r['acc'][1]:.3f}, {r['acc'][2]:.3f}]")  # fmt: skip
        bon = " | ".join(f"{v:.3f}" for v in r["bon"])
        print(f"| {r['bias']} | {r['learner']} | {agree} | {acc} | {r['pearson']:+.2f} | {bon} |")


if __name__ == "__main__":
    main()
