"""Build deterministic synthetic preference pairs from the shipped training prompts.

    python scripts/build_preferences.py [--prompts data/prompts/train.jsonl] \
        [--out data/preferences]

For each prompt the *chosen* answer is an on-topic, well-formed template answer; each *rejected*
answer is worse in one known way: off-topic, truncated, repetitive, rude/dismissive, or padded
with filler. The mix is tuned so that chosen answers are usually (not always) longer, a realistic
length bias that a reward model will learn and that PPO can then exploit. Same input and seed
give byte-identical output. See data/preferences/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

OPENERS = [
    "Good question. Here is a clear, practical answer about {topic}.",
    "Happy to help with {topic}. Here is how I would approach it.",
    "Let's go through {topic} step by step.",
]
BODY = [
    "The key idea is to start from what you already know about {topic} and build up from there.",
    "A concrete example helps: try the idea on a small case first, then check the result.",
    "Watch out for the common mistakes, such as skipping a step or assuming too much at once.",
    "It also helps to write down the main points, so you can see what is still missing.",
    "If you need more depth, compare two reliable sources and note where they agree.",
    "Finally, test your understanding by explaining it to someone else in your own words.",
]
CLOSERS = [
    "In short, {topic} becomes much easier once you break it into small steps.",
    "I hope this helps; feel free to ask a follow-up question about {topic}.",
]
RUDE = [
    "That is an obvious question. Look it up yourself.",
    "I don't have time for this. Figure out {topic} on your own.",
    "Why would anyone ask about {topic}? Next question.",
    "No. Ask someone else.",
]
FILLER = [
    "Basically, as I said, it is what it is.",
    "And so on and so forth, you know how it goes.",
    "To be honest, at the end of the day, things are the way they are.",
    "Needless to say, this is something, in a sense, to think about.",
]
# Rejection kinds and their weights: truncated and rude answers are short, filler and repetitive
# ones long, so chosen answers end up longer in roughly two pairs out of three.
KINDS = {"truncated": 3, "rude": 3, "off_topic": 2, "repetitive": 1, "filler": 1}
HELDOUT_SHARE = 0.15
STOPWORDS = {
    "a",
    "an",
    "and",
    "are",
    "about",
    "as",
    "be",
    "by",
    "can",
    "could",
    "do",
    "does",
    "for",
    "from",
    "give",
    "how",
    "i",
    "i'd",
    "i'm",
    "in",
    "is",
    "it",
    "its",
    "like",
    "me",
    "my",
    "of",
    "on",
    "or",
    "please",
    "should",
    "tell",
    "that",
    "the",
    "this",
    "to",
    "use",
    "using",
    "want",
    "we",
    "what",
    "when",
    "which",
    "why",
    "with",
    "would",
    "write",
    "you",
    "your",
    "explain",
    "describe",
    "help",
    "need",
}


def topic_of(prompt: str) -> str:
    """A short lower-case phrase for the prompt's subject: content words of its first clause."""
    clause = re.split(r"[.?!:;,\n]", prompt.strip(), maxsplit=1)[0]
    words = re.findall(r"[A-Za-z0-9'-]+", clause)
    kept = [w.lower() for w in words if w.lower() not in STOPWORDS][:5]
    return " ".join(kept) or "this"


def chosen_answer(topic: str, rng: random.Random) -> str:
    body = rng.sample(BODY, rng.randint(1, 4))
    parts = [rng.choice(OPENERS), *body, rng.choice(CLOSERS)]
    return " ".join(p.format(topic=topic) for p in parts)


def rejected_answer(kind: str, topic: str, chosen: str, other: str, rng: random.Random) -> str:
    if kind == "truncated":
        words = chosen.split()
        cut = max(4, int(len(words) * rng.uniform(0.3, 0.6)))
        return " ".join(words[:cut]).rstrip(".,;")
    if kind == "rude":
        return rng.choice(RUDE).format(topic=topic)
    if kind == "off_topic":
        return other
    if kind == "repetitive":
        sentence = rng.choice(BODY).format(topic=topic)
        return " ".join([rng.choice(OPENERS).format(topic=topic)] + [sentence] * rng.randint(3, 5))
    sentences = re.split(r"(?<=[.;])\s+", chosen)
    padded: list[str] = []
    for sentence in sentences:
        padded.append(sentence)
        padded.extend(rng.sample(FILLER, rng.randint(1, 2)))
    return " ".join(padded)


def read_prompts(path: Path) -> list[dict[str, str]]:
    prompts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        text = next(row[k] for k in ("prompt", "text", "instruction") if k in row)
        prompts.append({"id": str(row.get("id", len(prompts))), "prompt": text.strip()})
    return prompts


def is_heldout(prompt_id: str) -> bool:
    """Stable split by hash, independent of file order."""
    digest = hashlib.sha256(prompt_id.encode()).digest()
    return digest[0] / 256 < HELDOUT_SHARE


def build_pairs(prompts: list[dict[str, str]], seed: int, per_prompt: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    kinds = [k for k, w in KINDS.items() for _ in range(w)]
    topics = [topic_of(p["prompt"]) for p in prompts]
    pairs = []
    for i, prompt in enumerate(prompts):
        for j in range(per_prompt):
            kind = rng.choice(kinds)
            other_topic = topics[(i + rng.randint(1, len(prompts) - 1)) % len(prompts)]
            chosen = chosen_answer(topics[i], rng)
            other = (
                chosen_answer(other_topic, rng)
                if other_topic != topics[i]
                else "Bananas are yellow."
            )
            pairs.append(
                {
                    "id": f"{prompt['id']}-{j}",
                    "prompt_id": prompt["id"],
                    "prompt": prompt["prompt"],
                    "chosen": chosen,
                    "rejected": rejected_answer(kind, topics[i], chosen, other, rng),
                    "rejection": kind,
                }
            )
    return pairs


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=Path, default=Path("data/prompts/train.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("data/preferences"))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--per-prompt", type=int, default=1)
    parser.add_argument("--max-pairs", type=int, default=1800)
    args = parser.parse_args()
    prompts = read_prompts(args.prompts)
    wanted = max(1, args.max_pairs // args.per_prompt)
    if len(prompts) > wanted:  # a seeded sample spread over the whole file, kept in file order
        keep = sorted(random.Random(args.seed).sample(range(len(prompts)), wanted))
        prompts = [prompts[i] for i in keep]
    pairs = build_pairs(prompts, args.seed, args.per_prompt)[: args.max_pairs]
    train = [p for p in pairs if not is_heldout(p["prompt_id"])]
    heldout = [p for p in pairs if is_heldout(p["prompt_id"])]
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "train.jsonl", train)
    write_jsonl(args.out / "heldout.jsonl", heldout)
    longer = sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs) / max(len(pairs), 1)
    stats = {
        "train_pairs": len(train),
        "heldout_pairs": len(heldout),
        "chosen_longer_share": round(longer, 3),
        "kinds": {k: sum(p["rejection"] == k for p in pairs) for k in KINDS},
        "seed": args.seed,
        "source": str(args.prompts),
    }
    (args.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
