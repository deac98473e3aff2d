"""Seconds to evaluate one checkpoint on CPU with transformers: generate, reward score, KL.

Builds a throw-away SQLite database, registers SmolLM2 as the base, a LoRA adapter on it as the
checkpoint and SmolLM2 with a fresh score head as the reward model, then runs the real worker on
the first `--limit` held-out prompts. `--limit 40` and extrapolating is fine on a busy machine.

    .venv/bin/python bench/bench_evaluate.py --limit 40
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from judging.settings import PROJECT_ROOT

SMOLLM2 = PROJECT_ROOT / "data" / "models" / "SmolLM2-135M-Instruct"
HELDOUT = PROJECT_ROOT / "data" / "prompts" / "heldout.jsonl"
FALLBACK = [
    "Explain how a rainbow forms.",
    "Write a haiku about autumn.",
    "How do I sort a list in Python?",
    "What is the difference between weather and climate?",
    "Give three tips for better sleep.",
]


def _prompts(limit: int) -> list[str]:
    if HELDOUT.is_file():
        rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
        texts = [str(r.get("prompt") or r.get("text") or r.get("instruction")) for r in rows]
    else:
        print(f"{HELDOUT} missing: cycling {len(FALLBACK)} built-in prompts")
        texts = [f"{FALLBACK[i % len(FALLBACK)]} ({i})" for i in range(limit)]
    return texts[:limit]


def _models(root: Path) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(SMOLLM2, dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)  # a checkpoint that moved a little from the base
    peft_model.save_pretrained(root / "adapter")
    reward = AutoModelForSequenceClassification.from_pretrained(
        SMOLLM2, num_labels=1, dtype=torch.float32
    )
    reward.config.pad_token_id = 0
    reward.save_pretrained(root / "rm")
    AutoTokenizer.from_pretrained(SMOLLM2).save_pretrained(root / "rm")
    return root / "adapter", root / "rm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from judging.data import registry
    from judging.data.db import Base, make_engine, make_session_factory
    from judging.data.prompts import PromptRecord, store_prompt_set
    from judging.evaluation.config import load_eval_config
    from training.evaluation.worker import enqueue, process_one

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        adapter, rm = _models(root)
        engine = make_engine(f"sqlite:///{root / 'bench.db'}")
        Base.metadata.create_all(engine)
        factory = make_session_factory(engine)
        prompts = _prompts(args.limit)
        with factory() as session:
            run = registry.start_run(
                session,
                name="bench",
                algorithm="ppo",
                base_model=str(SMOLLM2),
                config={},
                reward_model=str(rm),
            )
            checkpoint = registry.register_checkpoint(session, run_id=run.id, step=1, path=adapter)
            records = [PromptRecord(str(i), p) for i, p in enumerate(prompts)]
            store_prompt_set(session, name="bench", split="heldout", records=records, source=None)
            session.commit()
            checkpoint_id = checkpoint.id
        sampling = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": args.max_new_tokens}
        config = load_eval_config(
            batch_size=args.batch_size, sampling=sampling, threads=args.threads
        )
        set_id = enqueue(factory, prompt_set_name="bench", checkpoint_ids=[checkpoint_id])
        start = time.perf_counter()
        outcome = process_one(
            factory,
            config=config,
            worker="bench",
            prompt_set_id=set_id,
            checkpoint_id=checkpoint_id,
        )
        seconds = time.perf_counter() - start
        engine.dispose()
    assert outcome is not None and outcome.status == "done", outcome
    per_prompt = seconds / len(prompts)
    print(f"evaluated {len(prompts)} prompts in {seconds:.1f} s ({per_prompt:.2f} s/prompt, "
          f"batch {args.batch_size}, max_new_tokens {args.max_new_tokens})")  # fmt: skip
    if len(prompts) < 200:
        print(f"extrapolated to 200 prompts: {per_prompt * 200:.0f} s")


if __name__ == "__main__":
    main()
