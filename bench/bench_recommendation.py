"""Cost of the recommendation on a 10-checkpoint x 200-prompt x 2-rater study, before and after
the statistics became numpy array code, in one run.

"Before" is the pure-Python implementation at commit `BEFORE` (Newton refits with warm starts
and influence caches), extracted from git into a temporary folder and timed in a child process
on the same study; "after" is the working tree. Prints seconds per call (median of --repeat) and
the load average (the machine is shared: compare figures only from one run).

    .venv/bin/python bench/bench_recommendation.py [--prompts 200] [--checkpoints 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "6610884"
"""The last commit with the pure-Python statistics."""

STUDY = """
import math, random
def study(prompts, checkpoints, LengthVote, CheckpointEvidence):
    rng = random.Random(0)
    out = []
    for k in range(checkpoints):
        votes = []
        for p in range(prompts):
            delta = rng.gauss(30 * k, 150)
            won = rng.random() < 1 / (1 + math.exp(-(0.1 * k + math.tanh(delta / 150))))
            votes += [LengthVote(p, float(won), delta)] * 2
        out.append(CheckpointEvidence(k, f"ppo@{10 * k}", "ppo", 10 * k, tuple(votes)))
    return out
"""
"""The same study for both sides (pure Python, so the old tree can run it unchanged)."""

TIMER = """
import statistics, sys, time
from judging.stats.lc_winrate import LengthVote
from judging.stats.recommend import CheckpointEvidence, RecommendationRule, recommend
prompts, checkpoints, repeat = map(int, sys.argv[1:4])
evidence = study(prompts, checkpoints, LengthVote, CheckpointEvidence)
for n_boot in (200, 1000):
    rule = RecommendationRule(n_boot=n_boot)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        recommend(evidence, rule)
        times.append(time.perf_counter() - start)
    print(f"{n_boot} {statistics.median(times):.4f}")
"""


def _after(prompts: int, checkpoints: int, repeat: int) -> dict[int, float]:
    sys.path.insert(0, str(ROOT))
    from judging.stats.lc_winrate import LengthVote
    from judging.stats.recommend import recommend
    from judging.stats.rule import CheckpointEvidence, RecommendationRule

    namespace: dict[str, object] = {}
    exec(STUDY, namespace)  # the shared study builder
    build = namespace["study"]
    assert callable(build)
    evidence = build(prompts, checkpoints, LengthVote, CheckpointEvidence)
    out = {}
    for n_boot in (200, 1000):
        rule = RecommendationRule(n_boot=n_boot)
        out[n_boot] = _median(lambda rule=rule: recommend(evidence, rule), repeat)
    return out


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _before(prompts: int, checkpoints: int, repeat: int) -> dict[int, float] | None:
    """Time the old tree in a child process; None when git cannot provide it."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE, "judging"], capture_output=True, check=False
        )
        if archive.returncode != 0:
            print(f"(no 'before' figures: git archive {BEFORE} failed: {archive.stderr.decode()})")
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        code = STUDY + TIMER
        result = subprocess.run(
            [sys.executable, "-c", code, str(prompts), str(checkpoints), str(repeat)],
            cwd=tmp, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": tmp},
        )  # fmt: skip
    return {int(n): float(s) for n, s in (line.split() for line in result.stdout.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"study: {args.checkpoints} checkpoints x {args.prompts} prompts x 2 raters")
    before = _before(args.prompts, args.checkpoints, args.repeat)
    after = _after(args.prompts, args.checkpoints, args.repeat)
    print("| resamples | before (pure Python, {BEFORE}) | after (numpy) | speed-up |".replace(
        "{BEFORE}", BEFORE))  # fmt: skip
    print("|---|---|---|---|")
    for n_boot, seconds in after.items():
        old = before.get(n_boot) if before else None
        ratio = f"{old / seconds:.1f}x" if old else "n/a"
        old_text = f"{old:.3f} s" if old else "n/a"
        print(f"| {n_boot} | {old_text} | {seconds:.3f} s | {ratio} |")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
