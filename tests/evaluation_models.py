"""Tiny models and a registered run for evaluation tests (base, LoRA checkpoints, reward model)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import Checkpoint
from judging.data.prompts import PromptRecord, store_prompt_set
from judging.evaluation.config import EvalConfig, parse_eval_config
from tests.conftest import FETCHED_MODELS

SMOLLM2 = FETCHED_MODELS / "SmolLM2-135M-Instruct"
EVAL_PROMPTS = [
    "How do I boil an egg?",
    "What is the capital of France?",
    "Explain photosynthesis briefly.",
    "Give me a tip for learning Python.",
    "Why is the sky blue?",
    "What is a prime number?",
]


def tiny_config(vocab_size: int, **extra: Any) -> Any:
    from transformers import LlamaConfig

    values: dict[str, Any] = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 128,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    return LlamaConfig(vocab_size=vocab_size, **{**values, **extra})


def build_base_and_rm(root: Path, **extra: Any) -> dict[str, Path]:
    """A tiny random causal LM ("base") and reward model, both saved with the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    torch.manual_seed(0)
    # A wider init than the default 0.02 makes the next-token distribution far from uniform, so a
    # LoRA perturbation moves it measurably (the final RMSNorm caps how far hidden states can).
    base = LlamaForCausalLM(tiny_config(len(tokenizer), initializer_range=0.2, **extra))
    base.save_pretrained(root / "base")
    torch.manual_seed(1)
    rm = LlamaForSequenceClassification(tiny_config(len(tokenizer), num_labels=1, **extra))
    rm.save_pretrained(root / "rm")
    for name in ("base", "rm"):
        tokenizer.save_pretrained(root / name)
    return {"base": root / "base", "rm": root / "rm"}


def build_adapter(base: Path, out: Path, *, noise: float = 0.0, seed: int = 0) -> Path:
    """A peft LoRA adapter on `base`: as peft inits it (B = 0) or with Gaussian noise added."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], lora_dropout=0.0
    )
    peft_model = get_peft_model(model, lora)
    if noise:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_" in name:
                    param.add_(torch.randn(param.shape, generator=generator) * noise)
    peft_model.save_pretrained(out)
    return out


@dataclass
class EvalLab:
    run_id: int
    base: Checkpoint
    checkpoint: Checkpoint
    prompt_set_id: int
    prompt_set_name: str
    run_name: str


def register_lab(
    session: Session, models: dict[str, Path], adapter: Path, prompts: list[str] = EVAL_PROMPTS
) -> EvalLab:
    """A PPO run with its base and one LoRA checkpoint, plus a held-out prompt set."""
    tag = uuid.uuid4().hex[:8]
    run = registry.start_run(
        session,
        name=f"eval-{tag}",
        algorithm="ppo",
        base_model=str(models["base"]),
        config={},
        reward_model=str(models["rm"]),
    )
    base = registry.ensure_base_checkpoint(session, run)
    checkpoint = registry.register_checkpoint(session, run_id=run.id, step=10, path=adapter)
    records = [PromptRecord(f"p{i}", text) for i, text in enumerate(prompts)]
    prompt_set = store_prompt_set(
        session, name=f"heldout-{tag}", split="heldout", records=records, source=None
    )
    return EvalLab(run.id, base, checkpoint, prompt_set.id, prompt_set.name, run.name)


def small_config(**overrides: Any) -> EvalConfig:
    data: dict[str, Any] = {
        "batch_size": 4,
        "score_batch_size": 4,
        "sampling": {"max_new_tokens": 8, "temperature": 1.0},
    }
    data.update(overrides)
    return parse_eval_config(data)
