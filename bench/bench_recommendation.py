"""Cost of the recommendation on a 10-checkpoint x 200-prompt x 2-rater study (pure statistics).

The recommendation refits the shared length model once per joint bootstrap resample; this prints
seconds per call for a few resample counts, the per-checkpoint LC interval for comparison, and the
load average (the machine is shared: compare figures only at similar load).

    .venv/bin/python bench/bench_recommendation.py [--prompts 200] [--checkpoints 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.stats.lc_winrate import LengthVote, lc_win_rate_interval, sigmoid
from judging.stats.recommend import CheckpointEvidence, RecommendationRule, recommend


def study(prompts: int, checkpoints: int) -> list[CheckpointEvidence]:
    rng = random.Random(0)
    out = []
    for k in range(checkpoints):
        votes: list[LengthVote] = []
        for p in range(prompts):
            delta = rng.gauss(30 * k, 150)
            won = rng.random() < sigmoid(0.1 * k + math.tanh(delta / 150))
            votes += [LengthVote(p, float(won), delta)] * 2
        out.append(CheckpointEvidence(k, f"ppo@{10 * k}", "ppo", 10 * k, tuple(votes)))
    return out


def timed(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    evidence = study(args.prompts, args.checkpoints)
    print(f"study: {args.checkpoints} checkpoints x {args.prompts} prompts x 2 raters")
    for n_boot in (200, 500, 1000):
        rule = RecommendationRule(n_boot=n_boot)
        seconds = timed(lambda rule=rule: recommend(evidence, rule), args.repeat)
        print(f"recommend n_boot={n_boot:5d}: {seconds:6.2f} s (median of {args.repeat})")
    one = evidence[0].votes
    seconds = timed(lambda: lc_win_rate_interval(one, n_boot=1000), args.repeat)
    print(f"lc_win_rate_interval, one checkpoint, n_boot=1000: {seconds:6.2f} s")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
