"""Seconds per phase to evaluate one checkpoint on CPU: the pre-issue-8 path against today's.

Both paths run in one process on the same prompts, seeds and sampling settings, against the same
LoRA checkpoint (SmolLM2 + a random adapter) and reward model (SmolLM2 + a fresh score head):

    old: generate in batches of 8 (full-vocabulary logits on prompt positions, full sort for top-p),
         RM on re-encoded chat text at batch 16, KL by a second teacher-forced pass of the
         checkpoint and one of the base (untempered, full logits)
    new: all prompts sorted by length in batches of --batch-size (finished rows leave the batch,
         last-position logits only, top-p on 256 candidates), RM on the sampled ids at batch 32,
         KL reusing the sampled tempered log-probs + one base pass on response positions only

Diagnostics (per-response + summary) are the same code for both and timed once each.

`--baseline 27` times the worker's set-up before issue 27 (bench/eval_before27.py: bf16 peft
sampling, KL passes at the generation batch with the default KV cache, RMs likewise) against
today's (the worker's bf16 peft sampling copy, KL at score_batch_size, no KV cache, both
reward models with the reward at PPO's response length read in the same pass, the prompt KV
and last hidden state of the base and of each reward model cached once per run: their fill is
printed apart), with `--rms 2`
for the demo's two reward models; then today's scoring functions on the old path's responses
against the old ones (the stored numbers must agree):

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluate.py --baseline 27 --rms 2 \
        --limit 200 --max-new-tokens 128 --top-p 1.0 --batch-size 32 --score-batch-size 16

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluate.py --limit 40
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_evaluate.py --limit 200 --skip-old \\
        --max-new-tokens 384 --top-p 1.0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench.eval_before27`

from judging.settings import PROJECT_ROOT, default_data_dir

SMOLLM2 = default_data_dir() / "models" / "SmolLM2-135M-Instruct"
HELDOUT = PROJECT_ROOT / "data" / "prompts" / "heldout.jsonl"
T = TypeVar("T")


def _prompts(limit: int) -> list[str]:
    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    return [str(r["prompt"]) for r in rows][:limit]


def _models(root: Path, rms: int = 1) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # a checkpoint that moved a little from the base
                param.copy_(torch.randn(param.shape, generator=generator) * 0.01)
    peft_model.save_pretrained(root / "adapter")
    torch.manual_seed(0)
    reward = AutoModelForSequenceClassification.from_pretrained(
        SMOLLM2, num_labels=1, dtype=torch.float32
    )
    reward.config.pad_token_id = 0
    reward.save_pretrained(root / "rm")
    AutoTokenizer.from_pretrained(SMOLLM2).save_pretrained(root / "rm")
    for extra in range(1, rms):  # the evaluation RM(s): other score heads
        torch.manual_seed(extra)
        other = AutoModelForSequenceClassification.from_pretrained(
            SMOLLM2, num_labels=1, dtype=torch.float32
        )
        other.config.pad_token_id = 0
        other.save_pretrained(root / f"rm{extra}")
        AutoTokenizer.from_pretrained(SMOLLM2).save_pretrained(root / f"rm{extra}")
    return root / "adapter", root / "rm"


CPU_SECONDS: dict[str, float] = {}


def _timed(phases: dict[str, float], name: str, fn: Callable[[], T]) -> T:
    """Wall seconds into `phases`; process CPU seconds (less sensitive to a shared host) aside."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    phases[name] = time.perf_counter() - start
    CPU_SECONDS[f"{id(phases)}:{name}"] = time.process_time() - cpu
    return out


def _cpu(phases: dict[str, float], name: str) -> float:
    return CPU_SECONDS.get(f"{id(phases)}:{name}", float("nan"))


def _diagnostics(texts: list[str], lengths: list[int], reasons: list[str]) -> dict[str, object]:
    from judging.evaluation.diagnostics import ResponseRecord, response_diagnostics, summarize

    for text in texts:
        response_diagnostics(text)
    records = [ResponseRecord(t, n, r) for t, n, r in zip(texts, lengths, reasons, strict=True)]
    return summarize(records)


def run_old(ctx: dict[str, Any], params: Any) -> tuple[dict[str, float], dict[str, Any]]:
    from bench import legacy_eval

    tok, policy, prompts, ids, seeds = (
        ctx[k] for k in ("tok", "old_policy", "prompts", "ids", "seeds")
    )
    phases: dict[str, float] = {}

    def generate() -> list[tuple[list[int], list[float], str]]:
        rows = []
        for start in range(0, len(ids), 8):
            rows += legacy_eval.sample_batch(
                policy, ids[start : start + 8], params, seeds[start : start + 8],
                pad_id=0, stops=ctx["stops"],
            )  # fmt: skip
        return rows

    rows = _timed(phases, "generate", generate)
    texts = [tok.decode(t, skip_special_tokens=True) for t, _, _ in rows]
    responses = [t for t, _, _ in rows]
    rewards = _timed(
        phases,
        "score",
        lambda: legacy_eval.text_rewards(ctx["rm_model"], ctx["rm_tok"], prompts, texts),
    )
    kls = _timed(phases, "KL", lambda: legacy_eval.kl_pairs(policy, ids, responses, 0))
    _timed(
        phases,
        "diagnostics",
        lambda: _diagnostics(texts, [len(r) for r in responses], [r for _, _, r in rows]),
    )
    return phases, {"responses": responses, "rewards": rewards, "kls": kls}


def run_new(ctx: dict[str, Any], params: Any, args: Any) -> tuple[dict[str, float], dict[str, Any]]:
    import torch

    from training.evaluation.scoring import KLScorer, RewardScorer
    from training.generation.base import ModelRef
    from training.generation.hf import TransformersGenerator, load_causal_lm

    policy, ids, seeds = ctx["policy"], ctx["ids"], ctx["seeds"]
    phases: dict[str, float] = {}
    gen_model = policy
    if args.gen_dtype == "bfloat16":
        gen_model = load_causal_lm(
            ModelRef(str(SMOLLM2), str(ctx["adapter"])), dtype=torch.bfloat16
        )
    generator = TransformersGenerator(
        ModelRef(str(SMOLLM2), str(ctx["adapter"])), batch_size=args.batch_size,
        model=gen_model, tokenizer=ctx["tok"],
    )  # fmt: skip
    results = _timed(phases, "generate", lambda: generator.generate(ctx["prompts"], params, seeds))
    responses = [r.token_ids for r in results]
    rm_dtype = getattr(torch, args.rm_dtype)
    scorer = RewardScorer(str(ctx["rm"]), batch_size=args.score_batch_size, dtype=rm_dtype)
    rewards = _timed(phases, "score", lambda: scorer.score(ids, responses))
    if rm_dtype != torch.float32 and "rm_fp32" in ctx:
        ctx["rm_check"] = (rewards, ctx["rm_fp32"].score(ids, responses))
    kl = KLScorer(policy, pad_id=0, batch_size=args.score_batch_size)
    sampled = [r.logprobs or [] for r in results] if generator.logprobs_exact else None
    kls = _timed(
        phases, "KL",
        lambda: kl.score(ids, responses, temperature=params.temperature, sampled=sampled),
    )  # fmt: skip
    _timed(
        phases, "diagnostics",
        lambda: _diagnostics([r.text for r in results], [len(r) for r in responses],
                             [r.finish_reason for r in results]),
    )  # fmt: skip
    return phases, {"responses": responses, "rewards": rewards, "kls": kls}


def _issue27_scorers(ctx: dict[str, Any], args: Any, cached: bool = False) -> list[Any]:
    """The reward models; `cached`: each with its prompt cache, as the worker loads them (the
    cache fill, once per run, is timed apart by `run_now`)."""
    import torch

    from training.evaluation.scoring import PromptCache, RewardScorer

    key = "cached_scorers" if cached else "scorers"
    if key not in ctx:
        root = Path(ctx["rm"]).parent
        paths = [ctx["rm"], *(root / f"rm{i}" for i in range(1, args.rms))]
        dtype = getattr(torch, args.rm_dtype)
        ctx[key] = [
            RewardScorer(
                str(p), batch_size=args.score_batch_size, dtype=dtype,
                prompt_cache=PromptCache() if cached else None,
            )
            for p in paths
        ]  # fmt: skip
    return list(ctx[key])


def run_before27(
    ctx: dict[str, Any], params: Any, args: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """The worker before issue 27 (bench/eval_before27.py), same models, prompts and seeds."""
    import torch

    from bench import eval_before27
    from training.generation.base import ModelRef
    from training.generation.hf import TransformersGenerator, load_causal_lm

    ref = ModelRef(str(SMOLLM2), str(ctx["adapter"]))
    if "before27_gen" not in ctx:
        ctx["before27_gen"] = load_causal_lm(ref, dtype=torch.bfloat16)
    generator = TransformersGenerator(
        ref,
        batch_size=args.batch_size,
        model=eval_before27.IntLogitsToKeep(ctx["before27_gen"]),
        tokenizer=ctx["tok"],
    )
    phases: dict[str, float] = {}
    results = _timed(
        phases, "generate", lambda: generator.generate(ctx["prompts"], params, ctx["seeds"])
    )
    responses = [r.token_ids for r in results]
    ids = ctx["ids"]
    scorers = _issue27_scorers(ctx, args)
    rewards = _timed(
        phases, "score", lambda: [eval_before27.rewards(s, ids, responses) for s in scorers]
    )
    kls = _timed(
        phases,
        "KL",
        lambda: eval_before27.kl(
            ctx["policy"], ids, responses, temperature=params.temperature,
            batch_size=args.batch_size,
        ),
    )  # fmt: skip
    _timed(
        phases, "diagnostics",
        lambda: _diagnostics([r.text for r in results], [len(r) for r in responses],
                             [r.finish_reason for r in results]),
    )  # fmt: skip
    return phases, {"responses": responses, "rewards": rewards[0], "all": rewards, "kls": kls}


def _now_sampler(ref: Any, args: Any) -> Any:
    """The model today's path samples from (`--now-sampling`)."""
    import torch

    from training.evaluation.models import sampling_copy
    from training.generation.hf import load_causal_lm

    if args.now_sampling == "merged-fp32":
        # fp32 sampling log-probs are exact: KL then needs the base's pass only.
        return load_causal_lm(ref).merge_and_unload().eval()
    if args.now_sampling == "peft":  # the unmerged peft model
        return load_causal_lm(ref, dtype=getattr(torch, args.gen_dtype))
    return sampling_copy(ref, "cpu")  # `make_generator`'s bf16 copy: the LoRA merged, then cast


def run_now(ctx: dict[str, Any], params: Any, args: Any) -> tuple[dict[str, float], dict[str, Any]]:
    """Today's worker set-up (`training.evaluation.models`), same models, prompts and seeds."""
    from training.evaluation.scoring import KLScorer, PromptCache
    from training.generation.base import ModelRef
    from training.generation.hf import TransformersGenerator

    ref = ModelRef(str(SMOLLM2), str(ctx["adapter"]))
    if "now_gen" not in ctx:
        ctx["now_gen"] = _now_sampler(ref, args)
    generator = TransformersGenerator(
        ref, batch_size=args.batch_size, model=ctx["now_gen"], tokenizer=ctx["tok"]
    )
    phases: dict[str, float] = {}
    results = _timed(
        phases, "generate", lambda: generator.generate(ctx["prompts"], params, ctx["seeds"])
    )
    responses = [r.token_ids for r in results]
    ids = ctx["ids"]
    scorers = _issue27_scorers(ctx, args, cached=True)
    cache = ctx.setdefault("base_cache", PromptCache())
    if len(ids) > 2:  # not the warm-up: every model's prompts, once per run (timed apart)
        start = time.perf_counter()
        with ctx["policy"].disable_adapter():
            inner = ctx["policy"].get_base_model()
            cache.fill(inner.model, ids, 0, "cpu", args.score_batch_size)
        for s in scorers:
            s.prompt_cache.fill(s.model.model, ids, s.pad_id, "cpu", args.score_batch_size)
        ctx["cache_fill_s"] = time.perf_counter() - start
    rewards = _timed(
        phases, "score", lambda: [s.score_at(ids, responses, args.train_length) for s in scorers]
    )
    kl = KLScorer(
        ctx["policy"], pad_id=0, batch_size=args.score_batch_size, end_id=0, base_cache=cache,
        merge=True,  # as `load_job_models`
    )  # fmt: skip
    sampled = [r.logprobs or [] for r in results] if generator.logprobs_exact else None
    kls = _timed(
        phases, "KL",
        lambda: kl.score(ids, responses, temperature=params.temperature, sampled=sampled),
    )  # fmt: skip
    _timed(
        phases, "diagnostics",
        lambda: _diagnostics([r.text for r in results], [len(r) for r in responses],
                             [r.finish_reason for r in results]),
    )  # fmt: skip
    full = [r[0] for r in rewards]
    return phases, {"responses": responses, "rewards": full[0], "all": full, "kls": kls}


def _agreement(ctx: dict[str, Any], params: Any, args: Any, old: dict[str, Any]) -> None:
    """Today's scoring functions on the old path's responses against the old numbers."""
    from bench import eval_before27
    from training.evaluation.scoring import KLScorer

    n = min(16, len(old["responses"]))
    ids, responses = ctx["ids"][:n], old["responses"][:n]
    if any(0 in r for r in responses):
        print("note: a response holds the pad id; today's numbers cut it there (item 2)")
    worst_reward = 0.0
    for scorer in _issue27_scorers(ctx, args, cached=True):
        before = eval_before27.rewards(scorer, ids, responses)
        now = scorer.score_at(ids, responses, args.train_length)[0]
        worst_reward = max(worst_reward, *(abs(a - b) for a, b in zip(before, now, strict=True)))
    kl = KLScorer(
        ctx["policy"],
        pad_id=0,
        batch_size=args.score_batch_size,
        end_id=0,
        base_cache=ctx.get("base_cache"),
    )
    now_kl = kl.score(ids, responses, temperature=params.temperature)
    worst_kl = max(
        abs(a - b)
        for x, y in zip(old["kls"][:n], now_kl, strict=True)
        for a, b in zip(x, y, strict=True)
    )
    print(f"today's scoring of the old path's first {n} responses vs the old numbers: "
          f"max |reward diff| {worst_reward:.2e} ({args.rm_dtype}), "
          f"max |KL diff| {worst_kl:.2e} nats (fp32)")  # fmt: skip


def _stock_attention_policy(adapter: Path) -> Any:
    """The old path's checkpoint: transformers' stock `sdpa` (GQA by copying the KV cache)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        SMOLLM2, dtype=torch.float32, attn_implementation="sdpa"
    )
    return PeftModel.from_pretrained(model, adapter).eval()


def _rm_dtype_check(ctx: dict[str, Any]) -> None:
    """How far the bf16 reward model's scores are from the fp32 one's on the same responses."""
    if "rm_check" not in ctx:
        return
    low, full = ctx["rm_check"]
    diffs = [abs(a - b) for a, b in zip(low, full, strict=True)]
    spread = statistics.pstdev(full) if len(full) > 1 else float("nan")
    corr = statistics.correlation(low, full) if len(full) > 1 else float("nan")
    print(f"reward model bf16 vs fp32 on the new responses: max |diff| {max(diffs):.4f}, "
          f"mean |diff| {_mean(diffs):.4f}, mean diff {_mean(low) - _mean(full):+.4f}, "
          f"sd of fp32 scores {spread:.4f}, Pearson r {corr:.5f}")  # fmt: skip


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--score-batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gen-dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--rm-dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--skip-old", action="store_true")
    parser.add_argument(
        "--baseline", default="8", choices=["8", "27"], help="old path: before issue 8 or 27"
    )
    parser.add_argument("--rms", type=int, default=1, help="reward models (the demo scores 2)")
    parser.add_argument(
        "--now-sampling", default="merged", choices=["merged", "peft", "merged-fp32"],
        help="today's sampling copy: the worker's (the LoRA merged, cast to bf16), the "
        "unmerged peft model in --gen-dtype, or the LoRA merged in fp32 (exact log-probs)",
    )  # fmt: skip
    parser.add_argument("--train-length", type=int, default=128, help="PPO's response length")
    args = parser.parse_args()
    if args.baseline == "27" and args.gen_dtype != "bfloat16":
        parser.error("--baseline 27 times the bf16-sampling set-up (this host's auto)")

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.generation.base import ModelRef, SamplingParams, load_tokenizer, stop_token_ids
    from training.generation.hf import load_causal_lm
    from training.sequences import prompt_ids

    torch.set_num_threads(args.threads)
    params = SamplingParams(args.temperature, args.top_p, args.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        load_start = time.perf_counter()
        adapter, rm = _models(Path(tmp), args.rms)
        tok = load_tokenizer(ModelRef(str(SMOLLM2), str(adapter)))
        policy = load_causal_lm(ModelRef(str(SMOLLM2), str(adapter)))
        prompts = _prompts(args.limit)
        ctx: dict[str, Any] = {
            "tok": tok, "policy": policy, "prompts": prompts, "adapter": adapter, "rm": rm,
            "ids": [prompt_ids(tok, p) for p in prompts],
            "seeds": [1234 + i for i in range(len(prompts))],
            "stops": stop_token_ids(tok, policy.generation_config),
        }  # fmt: skip
        if args.rm_dtype != "float32":
            from training.evaluation.scoring import RewardScorer

            ctx["rm_fp32"] = RewardScorer(str(rm), batch_size=args.score_batch_size)
        if not args.skip_old and args.baseline == "8":
            ctx["old_policy"] = _stock_attention_policy(adapter)
            ctx["rm_model"] = AutoModelForSequenceClassification.from_pretrained(rm).eval()
            ctx["rm_tok"] = AutoTokenizer.from_pretrained(rm)
            ctx["rm_tok"].pad_token = "<|endoftext|>"
        setup_s = time.perf_counter() - load_start
        print(f"setup (models built and loaded, not timed below): {setup_s:.0f} s")
        # Warm-up (one-time kernel and allocator set-up) on 2 prompts, 4 tokens, both paths.
        warm = {**ctx, "prompts": prompts[:2], "ids": ctx["ids"][:2], "seeds": ctx["seeds"][:2]}
        tiny = SamplingParams(args.temperature, args.top_p, 4)
        if args.baseline == "27":
            new_fn: Callable[..., Any] = run_now
            old_fn: Callable[..., Any] = lambda c, p: run_before27(c, p, args)  # noqa: E731
        else:
            new_fn, old_fn = run_new, run_old
        new_fn(warm, tiny, args)
        if not args.skip_old:
            old_fn(warm, tiny)
        # Old first for issue 27: a shared host's load drifts, and the later run usually gets
        # the busier minutes; the ratio is then conservative rather than flattering.
        if args.baseline == "27" and not args.skip_old:
            old_phases, old = old_fn(ctx, params)
            new_phases, new = new_fn(ctx, params, args)
        else:
            new_phases, new = new_fn(ctx, params, args)
            old_phases, old = old_fn(ctx, params) if not args.skip_old else ({}, None)
        if args.baseline == "27" and old is not None:
            _agreement(ctx, params, args, old)
        if "cache_fill_s" in ctx:
            print(f"prompt caches (base, reward models) filled once per run (not in the table): "
                  f"{ctx['cache_fill_s']:.1f} s for {len(ctx['ids'])} prompts")  # fmt: skip
    print(f"{len(prompts)} prompts, T={args.temperature}, top_p={args.top_p}, "
          f"max_new_tokens={args.max_new_tokens}, threads={args.threads}, "
          f"new batch {args.batch_size}, new generation dtype {args.gen_dtype}, "
          f"new reward-model dtype {args.rm_dtype}")  # fmt: skip
    print("| phase | old s | new s | old/new | old CPU s | new CPU s |\n|---|---|---|---|---|---|")
    for phase in ("generate", "score", "KL", "diagnostics"):
        o, n = old_phases.get(phase, float("nan")), new_phases[phase]
        oc, nc = _cpu(old_phases, phase), _cpu(new_phases, phase)
        print(f"| {phase} | {o:.1f} | {n:.1f} | {o / n:.1f}x | {oc:.1f} | {nc:.1f} |")
    total_new = sum(new_phases.values())
    total_old = sum(old_phases.values())
    ratio = total_old / total_new if total_old else float("nan")
    old_cpu = sum(_cpu(old_phases, p) for p in old_phases)
    new_cpu = sum(_cpu(new_phases, p) for p in new_phases)
    walls = f"| total | {total_old:.1f} | {total_new:.1f} | {ratio:.1f}x"
    print(f"{walls} | {old_cpu:.1f} | {new_cpu:.1f} |")
    tokens = sum(len(r) for r in new["responses"])
    per_200 = total_new * 200 / len(prompts)
    print(f"new path: {total_new / len(prompts):.2f} s/prompt, {per_200:.0f} s per 200 prompts; "
          f"{tokens} tokens generated")  # fmt: skip
    _stats("new", new, "tempered")
    _rm_dtype_check(ctx)
    if old is not None:
        _stats("old", old, "tempered" if args.baseline == "27" else "untempered")
        same = sum(a == b for a, b in zip(old["responses"], new["responses"], strict=True))
        d_reward = _mean(new["rewards"]) - _mean(old["rewards"])
        d_k3 = _mean([b for _, b in new["kls"]]) - _mean([b for _, b in old["kls"]])
        print(f"identical responses old vs new: {same}/{len(prompts)}; "
              f"reward new-old {d_reward:+.4f}; KL k3 new-old {d_k3:+.4f}")  # fmt: skip


def _stats(name: str, result: dict[str, Any], kind: str) -> None:
    k1 = _mean([a for a, _ in result["kls"]])
    k3 = _mean([b for _, b in result["kls"]])
    print(
        f"{name}: reward mean {_mean(result['rewards']):.4f}, KL k1 {k1:.4f}, k3 {k3:.4f} ({kind})"
    )


if __name__ == "__main__":
    main()
