"""Length distribution of the base's answers on the held-out prompts (chooses eval max_new_tokens).

Samples each held-out prompt once with the evaluation's sampler (temperature 0.7, top-p 1, the
evaluation's per-prompt seeds) and a generous token cap, then prints percentiles and the share of
answers that `max_new_tokens = N` would cut.

    OMP_NUM_THREADS=1 .venv/bin/python bench/base_lengths.py --cap 640 --out /tmp/lengths.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from judging.settings import PROJECT_ROOT, default_data_dir

SMOLLM2 = default_data_dir() / "models" / "SmolLM2-135M-Instruct"
HELDOUT = PROJECT_ROOT / "data" / "prompts" / "heldout.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--dtype", default="bfloat16", help="bfloat16 (AMX) or float32")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from training.generation.base import ModelRef, SamplingParams
    from training.generation.hf import TransformersGenerator, load_causal_lm

    torch.set_num_threads(args.threads)
    ref = ModelRef(str(SMOLLM2))
    model = load_causal_lm(ref, dtype=getattr(torch, args.dtype))
    generator = TransformersGenerator(ref, batch_size=args.batch_size, model=model)
    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    prompts = [str(r["prompt"]) for r in rows[: args.limit]]
    params = SamplingParams(temperature=args.temperature, top_p=1.0, max_new_tokens=args.cap)
    start = time.perf_counter()
    seeds = [args.seed + i for i in range(len(prompts))]
    results = generator.generate(prompts, params, seeds)
    seconds = time.perf_counter() - start
    lengths = [len(r.token_ids) for r in results]
    stopped = [r.finish_reason == "stop" for r in results]
    ok = sorted(lengths)
    n = len(ok)
    pct = {p: ok[min(n - 1, int(p / 100 * n))] for p in (10, 25, 50, 75, 90, 95, 99)}
    print(f"{n} prompts in {seconds:.0f} s ({sum(lengths)} tokens, {args.dtype})")
    print(f"base answer length in tokens (EOS included), cap {args.cap}: cut {n - sum(stopped)}")
    print("percentiles: " + ", ".join(f"p{p}={v}" for p, v in pct.items()))
    print(f"mean {sum(ok) / n:.1f}, max {ok[-1]}")
    for cut in (64, 128, 192, 256, 320, 384, 448, 512):
        cut_share = sum(1 for v, s in zip(lengths, stopped, strict=True) if v > cut or not s) / n
        print(f"max_new_tokens={cut}: base truncated in {cut_share:.1%}")
    if args.out:
        args.out.write_text(json.dumps({"lengths": lengths, "stopped": stopped, "cap": args.cap}))


if __name__ == "__main__":
    main()
