"""A LoRA reward model on the top layers is shipped as adapter + score head and merged back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.training.test_trainers import _config

pytestmark = [pytest.mark.training, pytest.mark.integration]


def test_lora_rm_ships_small_and_materialises_to_the_same_scores(
    tiny_models: dict[str, Path],
    tmp_path: Path,
    pg_url: str,
    pg_engine: Engine,
    cleanup_runs: list[str],
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.common import chat_prompt_ids, load_tokenizer
    from training.reward import train_rm
    from training.shipped_rm import materialise, ship

    cfg = _config(
        tiny_models,
        tmp_path,
        cleanup_runs,
        "rm",
        "run.max_steps=4",
        "lora.enabled=true",
        "rm.train_top_layers=1",
    )
    result = train_rm(cfg, database_url=pg_url, data_dir=tmp_path)
    adapter = result.output_dir / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [1]  # top 1 of 2 layers only
    shipped = ship(result.output_dir, tmp_path / "shipped" / "rm")
    assert sorted(p.name for p in shipped.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "model_card.json",
        "report.json",
        "report.md",
    ]
    merged = materialise(shipped, str(tiny_models["policy"]), tmp_path / "merged")
    assert materialise(shipped, str(tiny_models["policy"]), merged) == merged  # no-op the 2nd time

    tokenizer = load_tokenizer(str(tiny_models["policy"]))
    ids = torch.tensor([[*chat_prompt_ids(tokenizer, "Why is the sky blue?"), 5, 6, 7]])
    with torch.no_grad():
        a = AutoModelForSequenceClassification.from_pretrained(merged).eval()(input_ids=ids).logits
        b = (
            AutoModelForSequenceClassification.from_pretrained(result.output_dir / "final")
            .eval()(input_ids=ids)
            .logits
        )
    assert torch.allclose(a, b, atol=1e-5)
