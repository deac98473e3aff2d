"""How far KL(checkpoint || base) moves when the teacher-forced passes run under bf16 autocast.

Issue 8 keeps both KL passes in fp32 because pure bf16 (weights and activations) biased the
per-response KL by +0.10-0.14 nats. Autocast is a middle way: the matmuls run in bf16 (fp32
accumulation, AVX512-BF16/AMX where the CPU has them) while the residual stream, norms and
softmax stay fp32. This prints, on the same sampled responses, the seconds of both KL passes in
fp32 and under autocast, and the per-response differences of k1 and k3 between them, against
the spread of the fp32 figures. Same checkpoint as bench_evaluate.py (SmolLM2 + a random LoRA).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/kl_precision.py --limit 24
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench.bench_evaluate import SMOLLM2, _models, _prompts


def _kl(policy: Any, ids: list[list[int]], responses: list[list[int]], t: float, autocast: bool
        ) -> tuple[list[tuple[float, float]], float]:  # fmt: skip
    import torch

    from training.evaluation.scoring import KLScorer

    scorer = KLScorer(policy, pad_id=0, batch_size=16)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else nullcontext()
    start = time.process_time()
    with context:
        kls = scorer.score(ids, responses, temperature=t)
    return kls, time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.generation.base import ModelRef, SamplingParams
    from training.generation.hf import TransformersGenerator, load_causal_lm
    from training.sequences import prompt_ids

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        adapter, _rm = _models(Path(tmp))
        tok = AutoTokenizer.from_pretrained(SMOLLM2)
        prompts = _prompts(args.limit)
        ref = ModelRef(str(SMOLLM2), str(adapter))
        gen = TransformersGenerator(
            ref, batch_size=64, model=load_causal_lm(ref, dtype=torch.bfloat16), tokenizer=tok
        )
        params = SamplingParams(
            temperature=args.temperature, top_p=1.0, max_new_tokens=args.max_new_tokens
        )
        results = gen.generate(prompts, params, list(range(len(prompts))))
        ids = [prompt_ids(tok, p) for p in prompts]
        responses = [list(r.token_ids) for r in results]
        base = AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32)
        policy = PeftModel.from_pretrained(base, adapter).eval()
        full, full_s = _kl(policy, ids, responses, args.temperature, autocast=False)
        low, low_s = _kl(policy, ids, responses, args.temperature, autocast=True)
    tokens = sum(len(r) for r in responses)
    print(f"{len(prompts)} responses, {tokens} tokens, T={args.temperature}")
    print(f"KL passes CPU s: fp32 {full_s:.1f}, bf16 autocast {low_s:.1f} "
          f"({full_s / low_s:.2f}x)")  # fmt: skip
    for k, name in ((0, "k1"), (1, "k3")):
        a, b = [x[k] for x in full], [x[k] for x in low]
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        print(f"{name}: fp32 mean {statistics.fmean(a):.4f} (sd {statistics.pstdev(a):.4f}), "
              f"autocast mean {statistics.fmean(b):.4f}; per response autocast - fp32: mean "
              f"{statistics.fmean(diffs):+.4f}, max |diff| {max(map(abs, diffs)):.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
