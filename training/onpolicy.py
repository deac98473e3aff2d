"""On-policy response samples for preference pairs: two SmolLM2 answers per train prompt.

Generation is the slow half of building on-policy pairs (labelling by the gold preference takes
seconds), so it is its own resumable step: every batch is appended to a JSONL file and flushed,
and a rerun skips the prompts already there. A half-written last line (killed mid-write) is cut
off on the next start. The prompts are a seeded shuffle of the train set, so the first N of a
longer run are the same N a shorter run would take.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.common import read_jsonl, shard_files, shard_path
from training.generation.base import ModelRef, SamplingParams


@dataclass(frozen=True)
class SampleSpec:
    """What to sample: which prompts, how many, with which settings."""

    prompts: str = "data/prompts/train.jsonl"
    base_model: str = "var/models/SmolLM2-135M-Instruct"
    n_prompts: int = 800
    """Train prompts to answer (a seeded shuffle of the file, N from `first` on)."""
    first: int = 0
    """Where the window of the shuffle starts: the evaluation RM's pairs start after the proxy's
    prompts, so the two reward models never share a prompt."""
    dtype: str = "float32"
    """Sampling dtype ("bfloat16" is ~3x faster on CPUs with AMX; the shipped proxy used fp32)."""
    max_new_tokens: int = 160
    """Long enough that most answers end on their own, so length is something PPO can change."""
    temperature: float = 0.7
    """The PPO rollout temperature: the pairs are what the policy itself would say."""
    seed: int = 0
    batch_size: int = 16
    styles: tuple[str, ...] = ()
    """Instructions appended to the prompt for sample 0 and sample 1 (empty: the prompt as is).
    A brief and a detailed one make the two answers of a pair differ in length, so a labeller's
    length bias has something to act on; the pair is labelled and trained on the plain prompt."""


BRIEF_DETAILED = (
    "Answer briefly, in one or two sentences.",
    "Answer in detail: explain your reasoning and give examples.",
)
"""The styles of the ladder's proxy pairs (`rlhf ladder pairs`)."""


def styled(prompt: str, spec: SampleSpec, k: int) -> str:
    """The text sample k answers: the prompt, then its style's instruction (if any)."""
    if not spec.styles:
        return prompt
    return f"{prompt}\n\n{spec.styles[k % len(spec.styles)]}"


def sample_seed(seed: int, prompt_id: str, k: int) -> int:
    """A stable per-(prompt, sample) seed: the same answer whatever the batch or the run."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{k}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def chosen_prompts(spec: SampleSpec) -> list[dict[str, Any]]:
    rows = read_jsonl(spec.prompts, ("id", "prompt"))
    random.Random(spec.seed).shuffle(rows)
    return rows[spec.first : spec.first + spec.n_prompts]


def read_done(path: Path) -> set[str]:
    """Prompt ids already sampled; a torn last line is truncated away."""
    if not path.is_file():
        return set()
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1
    if end < len(raw):
        with path.open("r+b") as handle:
            handle.truncate(end)
    done: set[str] = set()
    for line in raw[:end].decode("utf-8").splitlines():
        if line.strip():
            done.add(json.loads(line)["prompt_id"])
    return done


def merge_shards(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Fold `<out>.shard*` into `out`: one line per prompt, in the order of `rows`."""
    shards = shard_files(out)
    if not shards:
        return
    by_id: dict[str, str] = {}
    for path in [out, *shards]:
        read_done(path)  # truncates a torn last line
        if path.is_file():
            for line in path.read_text("utf-8").splitlines():
                if line.strip():
                    by_id.setdefault(json.loads(line)["prompt_id"], line)
    order = [str(r["id"]) for r in rows]
    lines = [by_id[pid] for pid in order if pid in by_id]
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines), "utf-8")
    partial.replace(out)
    for path in shards:
        path.unlink()


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def generate_samples(
    spec: SampleSpec,
    out: Path,
    *,
    generator: Any = None,
    on_batch: Callable[[int, int, int], None] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> int:
    """Append two answers per pending prompt to `out`; returns how many prompts were added.

    `shard=(i, n)` samples only prompts i, i+n, i+2n... into `<out>.shard<i>of<n>` (n processes
    on n cores, each single-threaded, outpace one n-thread process on a busy host); the next
    unsharded call merges the shards into `out` in prompt order. Every sample has its own seed,
    so sharding changes nothing but the order lines were written in.

    `on_batch(done, total, new_tokens)` is called after each batch is on disk (progress bars).
    """
    from training.generation.hf import TransformersGenerator

    out.parent.mkdir(parents=True, exist_ok=True)
    rows = chosen_prompts(spec)
    index, count = shard
    if count == 1:
        merge_shards(out, rows)
    done = read_done(out)
    if count > 1:  # a shard appends to a file of its own: two processes never share one
        out = shard_path(out, index, count)
        done |= read_done(out)
    pending = [r for i, r in enumerate(rows) if r["id"] not in done and i % count == index]
    if not pending:
        return 0
    if generator is None:
        import torch

        from training.generation.hf import load_causal_lm

        ref = ModelRef(base_path=spec.base_model)
        model = load_causal_lm(ref, dtype=getattr(torch, spec.dtype))
        generator = TransformersGenerator(ref, batch_size=spec.batch_size * 2, model=model)
    gen = generator
    params = SamplingParams(temperature=spec.temperature, max_new_tokens=spec.max_new_tokens)
    added = 0
    with out.open("a", encoding="utf-8") as handle:
        for batch in _batches(pending, spec.batch_size):
            prompts = [styled(r["prompt"], spec, k) for r in batch for k in (0, 1)]
            seeds = [sample_seed(spec.seed, r["id"], k) for r in batch for k in (0, 1)]
            results = gen.generate(prompts, params, seeds)
            tokens = 0
            for i, row in enumerate(batch):
                pair = results[2 * i : 2 * i + 2]
                tokens += sum(len(r.token_ids) for r in pair)
                record = {
                    "prompt_id": row["id"],
                    "prompt": row["prompt"],
                    "category": row.get("category"),
                    "responses": [
                        {
                            "text": r.text,
                            "n_tokens": len(r.token_ids),
                            "finish_reason": r.finish_reason,
                        }
                        | ({"style": spec.styles[k % len(spec.styles)]} if spec.styles else {})
                        for k, r in enumerate(pair)
                    ],
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            added += len(batch)
            if on_batch is not None:
                on_batch(len(done) + added, len(rows), tokens)
    return added


# --- labelling by the gold preference ------------------------------------------------------------


def _split_of(seed: int, prompt_id: str, heldout_share: float) -> str:
    digest = hashlib.sha256(f"split:{seed}:{prompt_id}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:4], "little") / 2**32 < heldout_share else "train"


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Whole file or nothing: written under a temporary name, then renamed."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    tmp.replace(path)


def rater_agreement(gaps: list[float], temperature: float) -> float:
    """Expected agreement of two simulated raters (no position bias) over these gold gaps."""
    import math

    total = 0.0
    for gap in gaps:
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, gap / temperature))))
        total += p * p + (1 - p) * (1 - p)
    return total / len(gaps) if gaps else float("nan")


def label_pairs(
    samples: Path,
    out_dir: Path,
    labeller: Any,
    *,
    seed: int = 0,
    heldout_share: float = 0.15,
    scorer: Any = None,
) -> dict[str, Any]:
    """Turn sampled answer pairs into preference files; returns the statistics written.

    train.jsonl carries the noisy labellers' verdicts (flips and length bias, `LabellerSpec`);
    heldout.jsonl carries the gold verdict itself, so the reward model's held-out accuracy is
    its accuracy against the gold preference. Pairs with identical answers are dropped.
    """
    from judging.gold import labeller_prefers_first, word_count
    from training.gold import GoldScorer

    rows = [json.loads(line) for line in samples.read_text("utf-8").splitlines() if line.strip()]
    rows = [
        r for r in rows if r["responses"][0]["text"].strip() != r["responses"][1]["text"].strip()
    ]
    scorer = scorer or GoldScorer()
    prompts = [r["prompt"] for r in rows for _ in (0, 1)]
    texts = [x["text"] for r in rows for x in r["responses"]]
    golds = [s.total for s in scorer.scores(prompts, texts)]
    out: dict[str, list[dict[str, Any]]] = {"train": [], "heldout": []}
    agree = longer_chosen = 0
    gaps = []
    for i, row in enumerate(rows):
        a, b = row["responses"]
        ga, gb = golds[2 * i], golds[2 * i + 1]
        gaps.append(ga - gb)
        split = _split_of(seed, row["prompt_id"], heldout_share)
        if split == "heldout":
            first = ga >= gb
        else:
            rng = random.Random(sample_seed(seed, row["prompt_id"], 99))
            wa, wb = word_count(a["text"]), word_count(b["text"])
            first = labeller_prefers_first(ga, gb, wa, wb, labeller, rng)
            agree += first == (ga >= gb)
        chosen, rejected = (a, b) if first else (b, a)
        g_chosen, g_rejected = (ga, gb) if first else (gb, ga)
        if split == "train":
            longer_chosen += word_count(chosen["text"]) > word_count(rejected["text"])
        out[split].append(
            {
                "id": row["prompt_id"],
                "prompt_id": row["prompt_id"],
                "prompt": row["prompt"],
                "chosen": chosen["text"],
                "rejected": rejected["text"],
                "gold_chosen": round(g_chosen, 6),
                "gold_rejected": round(g_rejected, 6),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, items in out.items():
        _write_jsonl(out_dir / f"{split}.jsonl", items)
    n_train = len(out["train"])
    stats = {
        "samples": str(samples),
        "pairs": {"train": n_train, "heldout": len(out["heldout"])},
        "labeller": {"flip": labeller.flip, "length_bias": labeller.length_bias, "seed": seed},
        "train_labels_agreeing_with_gold": round(agree / n_train, 4) if n_train else None,
        "train_chosen_longer_share": round(longer_chosen / n_train, 4) if n_train else None,
        "truncated_share": round(
            sum(x["finish_reason"] == "length" for r in rows for x in r["responses"])
            / max(1, 2 * len(rows)),
            4,
        ),
        "mean_gold": round(sum(golds) / max(1, len(golds)), 4),
        "simulated_rater_agreement_by_temperature": {
            str(t): round(rater_agreement(gaps, t), 4) for t in (0.02, 0.04, 0.06, 0.08, 0.1, 0.15)
        },
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    return stats
