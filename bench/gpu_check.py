"""The stages of bench/gpu_check.sh, one per process (a crash or time-out loses only its row).

    python bench/gpu_check.py models DIR      # SmolLM2 (+ proxy and evaluation RMs) into DIR
    python bench/gpu_check.py ppo DIR         # a few PPO steps, LoRA, bf16, on the GPU
    python bench/gpu_check.py eval DIR        # one checkpoint on the 200 held-out prompts
    python bench/gpu_check.py table DIR       # the table of every stage's results.json row

Weights: SmolLM2-135M-Instruct's own when `var/models/SmolLM2-135M-Instruct` holds them (it is
517 MB: it cannot travel to a lent machine, whose calls carry 64 MiB); otherwise its config and
tokenizer (`.gpu/smollm2`, from `make gpu-wheels`) with random weights. Random weights cost the
same per token; their answers never stop early, so evaluation time is then the upper bound
(every answer runs to the 128-token cap), and the table says which weights were used.
Each stage appends one JSON line to DIR/results.jsonl.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "var" / "models" / "SmolLM2-135M-Instruct"  # `make model` (the data dir)
CONFIG_ONLY = ROOT / ".gpu" / "smollm2"
HELDOUT = ROOT / "data" / "prompts" / "heldout.jsonl"
TRAIN = ROOT / "data" / "prompts" / "train.jsonl"
SMOKE = os.environ.get("GPU_CHECK_SMOKE") == "1"
"""A CPU dry run of the plumbing (tiny sizes, fp32): `make gpu-check-smoke`. Not a measurement."""
PPO_STEPS = 2 if SMOKE else 4
EVAL_NEW_TOKENS = 8 if SMOKE else 128  # the demo's eval_demo.yaml


def _record(out: Path, row: dict[str, Any]) -> None:
    import resource

    import torch

    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    if torch.cuda.is_available():
        row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    with (out / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def models(out: Path) -> None:
    """The policy base, a proxy RM and an evaluation RM (fresh score heads, other seeds)."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    start = time.perf_counter()
    real = (REAL / "model.safetensors").is_file()
    source = REAL if real else CONFIG_ONLY
    if not (source / "config.json").is_file():
        raise SystemExit(f"neither {REAL} nor {CONFIG_ONLY} holds a config: run make gpu-wheels")
    tokenizer = AutoTokenizer.from_pretrained(source)
    base = out / "models" / "base"
    if real:
        policy = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    else:
        torch.manual_seed(0)
        policy = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))  # type: ignore[no-untyped-call]
    policy.config.pad_token_id = 0
    policy.save_pretrained(base)
    tokenizer.save_pretrained(base)
    for name, seed in (("rm", 1), ("rm-eval", 2)):
        torch.manual_seed(seed)
        rm = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
        rm.config.pad_token_id = 0
        rm.save_pretrained(out / "models" / name)
        tokenizer.save_pretrained(out / "models" / name)
    (out / "models" / "weights.txt").write_text("SmolLM2" if real else "random (SmolLM2 config)")
    _record(out, {"stage": "models", "wall_s": round(time.perf_counter() - start, 1)})


def _weights(out: Path) -> str:
    path = out / "models" / "weights.txt"
    return path.read_text() if path.is_file() else "?"


def ppo(out: Path) -> None:
    """PPO_STEPS steps of the demo's PPO recipe with LoRA in bf16 on the GPU; seconds per step
    from the compute recorded at consecutive checkpoints (loading and step 1 excluded)."""
    if not SMOKE:
        os.environ.setdefault("ACCELERATE_MIXED_PRECISION", "bf16")
    from bench.bench_ppo import _seconds_per_step
    from judging.data.migrate import upgrade
    from training.config import load_config
    from training.ppo import train_ppo

    url = f"sqlite:///{out / 'ppo.db'}"
    upgrade(url)
    overrides = [
        f"run.max_steps={PPO_STEPS}",
        "run.save_every=1",
        "run.max_seconds=0",
        f"run.output_dir={out / 'ppo'}",
        f"model.base_model={out / 'models' / 'base'}",
        f"model.reward_model={out / 'models' / 'rm'}",
        f"data.prompts={TRAIN}",
    ]
    if SMOKE:
        overrides += ["optim.batch_size=2", "ppo.response_length=8", "run.threads=1"]
        overrides += ["ppo.local_rollout_forward_batch_size=2"]
    else:
        overrides += ["model.dtype=bfloat16", "model.bf16=true"]
    cfg = load_config(
        ROOT / "training" / "configs" / "demo_ppo_kl001.yaml", overrides, name="gpu-check-ppo"
    )
    start = time.perf_counter()
    train_ppo(cfg, database_url=url, data_dir=out)
    wall = time.perf_counter() - start
    per_step = _seconds_per_step(url, cfg.run.name)
    tokens = cfg.optim.batch_size * cfg.ppo.response_length
    _record(
        out,
        {
            "stage": "ppo",
            "weights": _weights(out),
            "steps": PPO_STEPS,
            "wall_s": round(wall, 1),
            "step_s": round(per_step, 2),
            "tokens_per_s": round(tokens / per_step, 1) if per_step > 0 else None,
            "note": f"batch {cfg.optim.batch_size} x {cfg.ppo.response_length} tokens, LoRA r16",
        },
    )


def evaluate(out: Path) -> None:
    """One LoRA checkpoint (the PPO run's last, else the base) on the 200 held-out prompts,
    128 new tokens, both reward models, through the evaluation worker on CUDA."""
    from sqlalchemy import func, select

    from judging.data import registry
    from judging.data.db import make_engine, make_session_factory
    from judging.data.migrate import upgrade
    from judging.data.models import Generation
    from judging.data.prompts import PromptRecord, store_prompt_set
    from judging.evaluation.config import parse_eval_config
    from training.evaluation.worker import enqueue, process_one

    url = f"sqlite:///{out / 'eval.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    adapters = sorted((out / "ppo").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    checkpoint_path = adapters[-1] if adapters else out / "models" / "base"
    rows = [json.loads(line) for line in HELDOUT.read_text().splitlines() if line.strip()]
    with factory() as session:
        run = registry.start_run(
            session,
            name="gpu-check-eval",
            algorithm="ppo",
            base_model=str(out / "models" / "base"),
            config={"ppo": {"response_length": EVAL_NEW_TOKENS}},
            reward_model=str(out / "models" / "rm"),
        )
        checkpoint = registry.register_checkpoint(
            session, run_id=run.id, step=PPO_STEPS, path=checkpoint_path
        )
        records = [PromptRecord(str(r.get("id", i)), str(r["prompt"])) for i, r in enumerate(rows)]
        store_prompt_set(session, name="heldout-200", split="heldout", records=records, source=None)
        session.commit()
        checkpoint_id = checkpoint.id
    config = parse_eval_config(
        {
            "device": "cpu" if SMOKE else "cuda",
            "batch_size": 200,
            "score_batch_size": 64,
            "limit": 4 if SMOKE else None,
            "threads": 1 if SMOKE else None,
            "sampling": {"max_new_tokens": EVAL_NEW_TOKENS, "temperature": 0.7, "top_p": 1.0},
            "eval_reward_model": str(out / "models" / "rm-eval"),
        }
    )
    set_id = enqueue(factory, prompt_set_name="heldout-200")
    start = time.perf_counter()
    outcome = process_one(
        factory, config=config, worker="gpu", prompt_set_id=set_id, checkpoint_id=checkpoint_id
    )
    wall = time.perf_counter() - start
    with factory() as session:
        tokens = session.scalar(
            select(func.sum(Generation.token_count)).where(
                Generation.checkpoint_id == checkpoint_id
            )
        )
        n = session.scalar(select(func.count()).where(Generation.checkpoint_id == checkpoint_id))
    _record(
        out,
        {
            "stage": "eval",
            "weights": _weights(out),
            "status": outcome.status if outcome else "not claimed",
            "error": outcome.error if outcome else None,
            "wall_s": round(wall, 1),
            "responses": n,
            "tokens_per_s": round((tokens or 0) / wall, 1) if wall > 0 else None,
            "note": f"{checkpoint_path.name}, {EVAL_NEW_TOKENS} new tokens, 2 RMs",
        },
    )


def table(out: Path) -> None:
    path = out / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    columns = (
        "stage",
        "status",
        "wall_s",
        "step_s",
        "tokens_per_s",
        "peak_gpu_gib",
        "peak_rss_gib",
        "note",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        row.setdefault("status", "done" if "error" not in row else "failed")
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    weights = {r.get("weights") for r in rows if r.get("weights")}
    print(f"weights: {', '.join(sorted(weights)) or '?'}")


STAGES = {"models": models, "ppo": ppo, "eval": evaluate, "table": table}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in STAGES:
        raise SystemExit(f"usage: gpu_check.py {{{','.join(STAGES)}}} OUT_DIR")
    target = Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    STAGES[sys.argv[1]](target)
