"""Tiny random Llama models with the SmolLM2 tokenizer, prompt files and run clean-up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete

from judging.data.models import TrainingRun
from tests.evaluation_models import SMOLLM2

PROMPTS = [
    "How do I boil an egg?",
    "What is the capital of France?",
    "Explain photosynthesis briefly.",
    "Give me a tip for learning Python.",
    "Why is the sky blue?",
    "How do plants drink water?",
    "What is a prime number?",
    "Suggest a name for a cat.",
]


def _tiny_config(tokenizer_len: int) -> object:
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        vocab_size=tokenizer_len,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny causal LM and a tiny reward model, both with the SmolLM2 tokenizer."""
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip(f"{SMOLLM2} is missing: run `rlhf models fetch` first")
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, LlamaForSequenceClassification

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    torch.manual_seed(0)
    config = _tiny_config(len(tokenizer))
    policy = LlamaForCausalLM(config)  # type: ignore[arg-type]
    policy.save_pretrained(root / "policy")
    tokenizer.save_pretrained(root / "policy")
    config.num_labels = 1  # type: ignore[attr-defined]
    reward = LlamaForSequenceClassification(config)  # type: ignore[arg-type]
    reward.save_pretrained(root / "reward")
    tokenizer.save_pretrained(root / "reward")
    return {"policy": root / "policy", "reward": root / "reward"}


@pytest.fixture
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS), encoding="utf-8")
    return path


@pytest.fixture
def cleanup_runs(pg_engine: Engine) -> Iterator[list[str]]:
    """Names appended here are deleted (with their checkpoints and metrics) after the test."""
    names: list[str] = []
    yield names
    with pg_engine.begin() as conn:
        conn.execute(delete(TrainingRun).where(TrainingRun.name.in_(names)))
