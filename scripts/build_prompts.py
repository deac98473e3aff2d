"""Build the shipped prompt sets `data/prompts/train.jsonl` (5,000) and `heldout.jsonl` (200).

The prompts are generated combinatorially from hand-written material (scripts/prompt_*.py): no
network, no dataset hub. The build is seeded, so running it twice gives byte-identical files.

    .venv/bin/python scripts/build_prompts.py           # (re)write both files, print a report
    .venv/bin/python scripts/build_prompts.py --check   # exit 1 if the committed files differ

How the split stays clean: every subject (concept, task, pair, country, passage frame...) and
every phrasing template is assigned to exactly one split by a seeded hash of its text; on top of
that a held-out candidate is rejected when its word-3-gram Jaccard similarity to ANY training
prompt reaches CROSS_SPLIT_LIMIT (0.3), and any candidate is rejected when it is an exact
duplicate of any prompt or too similar to a prompt already in its own set (WITHIN_LIMIT: the 0.5
near-duplicate threshold for train, a stricter 0.4 for the held-out set that raters read).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import prompt_generators as basic  # noqa: E402
import prompt_generators_extra as extra  # noqa: E402
from prompt_picker import Picker  # noqa: E402

from judging.data.prompt_quality import (  # noqa: E402
    NEAR_DUPLICATE_THRESHOLD,
    ShingleIndex,
    exact_duplicates,
    find_near_duplicates_within,
    max_cross_similarity,
)
from judging.data.prompts import normalise  # noqa: E402

SEED = 20261122
SIZES = {"train": 5000, "heldout": 200}
OUT_DIR = ROOT / "data" / "prompts"
CROSS_SPLIT_LIMIT = 0.3  # well below the 0.5 near-duplicate threshold, as a safety margin
# Raters read every held-out prompt, so the held-out set is kept more varied than the threshold.
WITHIN_LIMIT = {"train": NEAR_DUPLICATE_THRESHOLD, "heldout": 0.4}
MAX_TRIES_PER_PROMPT = 400

Row = dict[str, str]
CATEGORIES: dict[str, Callable[[Picker], str]] = {
    "explanation": basic.explanation,
    "how-to": basic.how_to,
    "advice": basic.advice,
    "creative-writing": extra.creative_writing,
    "summarising": extra.summarising,
    "comparison": extra.comparison,
    "factual-question": extra.factual_question,
}


def quotas(total: int) -> dict[str, int]:
    """Split `total` as evenly as possible over the categories (earlier ones get the remainder)."""
    base, extra_rows = divmod(total, len(CATEGORIES))
    return {name: base + (1 if i < extra_rows else 0) for i, name in enumerate(CATEGORIES)}


def build_split(picker: Picker, seen: set[str], train: ShingleIndex | None) -> list[Row]:
    """Generate one split, category by category, rejecting duplicates as described above."""
    split = picker.split
    own = ShingleIndex()
    rows: list[Row] = []
    for category, quota in quotas(SIZES[split]).items():
        made = tries = 0
        while made < quota:
            tries += 1
            if tries > quota * MAX_TRIES_PER_PROMPT:
                raise SystemExit(f"{split}/{category}: material exhausted after {made} prompts")
            text = CATEGORIES[category](picker)
            key = normalise(text)
            accepted = key not in seen and own.max_similarity(text)[1] < WITHIN_LIMIT[split]
            if accepted and train is not None:
                accepted = train.max_similarity(text)[1] < CROSS_SPLIT_LIMIT
            picker.settle(accepted)
            if not accepted:
                continue
            seen.add(key)
            own.add(text)
            rows.append({"prompt": text, "category": category})
            made += 1
    random.Random(f"{SEED}:{split}:order").shuffle(rows)
    return [{"id": f"{split}-{i:05d}", **row} for i, row in enumerate(rows, start=1)]


def build() -> dict[str, list[Row]]:
    """Both splits; fails if any subject ended up on both sides of the split."""
    seen: set[str] = set()
    pickers = {split: Picker(split, SEED) for split in SIZES}
    train = build_split(pickers["train"], seen, None)
    index = ShingleIndex()
    for row in train:
        index.add(row["prompt"])
    heldout = build_split(pickers["heldout"], seen, index)
    conflicts = sorted({c for picker in pickers.values() for c in picker.subject_conflicts()})
    if conflicts:
        raise SystemExit(f"subjects on both sides of the split: {', '.join(conflicts)}")
    return {"train": train, "heldout": heldout}


def render(rows: list[Row]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def report(sets: dict[str, list[Row]]) -> None:
    """Print counts, lengths and duplicate checks (the figures in docs/prompts-and-weights.md)."""
    texts = {split: [row["prompt"] for row in rows] for split, rows in sets.items()}
    for split, rows in sets.items():
        print(f"{split}: {len(rows)} prompts")
        for category in CATEGORIES:
            lengths = [len(r["prompt"].split()) for r in rows if r["category"] == category]
            median = statistics.median(lengths)
            span = f"{min(lengths)}-{max(lengths)}"
            print(f"  {category:17} {len(lengths):4}  words {span}, median {median:g}")
        within = find_near_duplicates_within(texts[split])
        print(
            f"  exact duplicates {len(exact_duplicates(texts[split]))};"
            f" near-duplicate pairs (>= {NEAR_DUPLICATE_THRESHOLD}) {len(within)}"
        )
    cross = max_cross_similarity(texts["heldout"], texts["train"])
    both = texts["train"] + texts["heldout"]
    print(f"exact duplicates across splits: {len(exact_duplicates(both))}")
    print(f"max held-out x train similarity (word 3-gram Jaccard): {cross:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    sets = build()
    if args.check:
        stale = [s for s in sets if _read(args.out / f"{s}.jsonl") != render(sets[s])]
        if stale:
            print(f"out of date: {', '.join(stale)}; run scripts/build_prompts.py", file=sys.stderr)
            return 1
        print("prompt files are up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in sets.items():
        (args.out / f"{split}.jsonl").write_text(render(rows), encoding="utf-8")
    report(sets)
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
