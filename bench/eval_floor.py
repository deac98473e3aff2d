"""The least time one checkpoint's evaluation can take on this CPU: matmul work / GEMM rate.

Counts the multiply-adds an evaluation cannot avoid (SmolLM2's linear layers only: no attention,
norms, sampling, Python or padding) for the held-out prompts at the given response length:

    generate    prefill of every prompt (logits at its last position only) + one decoding step
                per response token (full vocabulary projection)
    reward      one pass of each reward model over its response tokens (a scalar head): the
                reward models' prompt prefixes are cached once per run too (`--no-prompt-cache`:
                over prompt + response, as before)
    KL base     the base's teacher-forced pass (vocabulary projection at response positions);
                since issue 27 the base's prompt KV and last hidden state are computed once per
                run (`training.evaluation.scoring.PromptCache`), so per checkpoint only the
                response tokens but the last run through it (`--no-prompt-cache`: as before)
    KL ckpt     where sampling is bf16 (`--checkpoint-pass`), the checkpoint's own fp32
                teacher-forced pass over prompt + response; on fp32 hosts the checkpoint's side
                reuses the fp32 log-probs its sampler returned and costs nothing here

and divides by the fp32 GEMM rate measured here on the same shapes (1 and 2 threads). Nothing
real can beat the figure it prints: it is the floor under issue 8's "at most 3 minutes per
checkpoint on 200 prompts" for fp32 log-probs on this host.

    PYTHONPATH=. .venv/bin/python bench/eval_floor.py --response-tokens 59 --reward-models 2
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from judging.settings import PROJECT_ROOT, default_data_dir

SMOLLM2 = default_data_dir() / "models" / "SmolLM2-135M-Instruct"
HELDOUT = PROJECT_ROOT / "data" / "prompts" / "heldout.jsonl"


def _layer_shapes(config: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(in, out, count) of every linear layer of the decoder stack, per token."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * config.get("head_dim", h // config["num_attention_heads"])
    layers = config["num_hidden_layers"]
    return [(h, h, 2 * layers), (h, kv, 2 * layers), (h, inter, 2 * layers), (inter, h, layers)]


def _prompt_lengths(limit: int) -> list[int]:
    from transformers import AutoTokenizer

    from training.generation.base import chat_prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    return [len(chat_prompt_ids(tokenizer, str(r["prompt"]))) for r in rows[:limit]]


def _seconds_per_row(rows: int, k: int, n: int, threads: int, budget_s: float = 0.4) -> float:
    """Seconds per row of an fp32 (rows x k) @ (k x n) product on `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    a, w = torch.randn(rows, k), torch.randn(n, k)
    for _ in range(2):
        torch.nn.functional.linear(a, w)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < budget_s:
        torch.nn.functional.linear(a, w)
        calls += 1
    return (time.perf_counter() - start) / calls / rows


class Floor:
    """Matmul seconds per token of the decoder stack and of the vocabulary head, measured on this
    host at a batch of `rows` token positions (2048: a teacher-forced pass; 64: a decoding step)."""

    def __init__(self, config: dict[str, Any], rows: int, threads: int) -> None:
        self.body = sum(
            count * _seconds_per_row(rows, k, n, threads) for k, n, count in _layer_shapes(config)
        )
        self.head = _seconds_per_row(rows, config["hidden_size"], config["vocab_size"], threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200, help="held-out prompts")
    parser.add_argument(
        "--response-tokens",
        type=float,
        default=59.0,
        help="mean sampled tokens per response (59: the base at max_new_tokens 64, measured by "
        "bench_evaluate on 24 prompts; most answers are cut at 64)",
    )
    parser.add_argument("--reward-models", type=int, default=2, help="training RM + evaluation RM")
    parser.add_argument("--batch", type=int, default=64, help="decoding batch (rows per step)")
    parser.add_argument("--target-s", type=float, default=180.0)
    parser.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="the base and reward-model passes over prompts too (pre-27)",
    )
    parser.add_argument(
        "--checkpoint-pass",
        action="store_true",
        help="bf16 sampling: the checkpoint's log-probs recomputed by an fp32 pass",
    )
    args = parser.parse_args()

    config = json.loads((SMOLLM2 / "config.json").read_text())
    prompts = _prompt_lengths(args.limit)
    p_tokens, r_tokens = sum(prompts), args.response_tokens * len(prompts)
    print(
        f"{len(prompts)} prompts: {p_tokens} prompt tokens (mean {p_tokens / len(prompts):.1f}), "
        f"{r_tokens:.0f} response tokens, {args.reward_models} reward model(s); fp32 matmuls of "
        "SmolLM2's linear layers only"
    )
    print("| phase | token positions | floor s 1 thread | floor s 2 threads |")
    print("|---|---|---|---|")
    totals = {1: 0.0, 2: 0.0}
    floors = {
        (rows, threads): Floor(config, rows, threads)
        for rows in (2048, args.batch)
        for threads in (1, 2)
    }
    phases = {
        # (token positions through the stack, positions through the head, rows per matmul)
        "generate: prefill": (p_tokens, 0, 2048),
        "generate: decode": (r_tokens, r_tokens, args.batch),
        "reward models": (
            args.reward_models * (p_tokens + r_tokens if args.no_prompt_cache else r_tokens),
            0,
            2048,
        ),
        "KL: base pass": (
            p_tokens + r_tokens if args.no_prompt_cache else r_tokens - len(prompts),
            r_tokens,
            2048,
        ),
    }
    if args.checkpoint_pass:
        phases["KL: checkpoint pass"] = (p_tokens + r_tokens, r_tokens, 2048)
    for name, (stack, head, rows) in phases.items():
        cells = []
        for threads in (1, 2):
            floor = floors[(rows, threads)]
            seconds = stack * floor.body + head * floor.head
            totals[threads] += seconds
            cells.append(f"{seconds:.0f}")
        print(f"| {name} | {stack:.0f} | {cells[0]} | {cells[1]} |")
    print(f"| total | | {totals[1]:.0f} | {totals[2]:.0f} |")
    verdict = "within" if totals[2] <= args.target_s else "over"
    print(
        f"floor on 2 threads: {totals[2]:.0f} s, {verdict} the {args.target_s:.0f} s target before "
        "attention, sampling, norms, padding or Python take any time"
    )


if __name__ == "__main__":
    main()
