"""A LoRA reward model on the top layers is shipped as adapter + score head and merged back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.training.test_trainers import _config


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


SHIPPED = {
    "rm-onpolicy": "training/configs/rm_onpolicy.yaml",
    "rm-onpolicy-eval": "training/configs/rm_onpolicy_eval.yaml",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_reward_model_scores_its_held_out_pairs_as_its_report_says(
    name: str, tmp_path: Path
) -> None:
    """The adapter in the repo, merged onto SmolLM2, reproduces the held-out accuracy and mean
    margin its report states: the report describes these weights, not an earlier run's."""
    from judging.evaluation.rm_report import pairwise_accuracy
    from judging.settings import PROJECT_ROOT
    from tests.evaluation_models import SMOLLM2 as smollm2
    from training.common import load_tokenizer
    from training.config import load_config
    from training.preferences import load_pairs, tokenize_pairs
    from training.reward import REQUIRED, score
    from training.shipped_rm import materialise

    if not (smollm2 / "config.json").is_file():
        pytest.skip("SmolLM2 is not converted: run `rlhf models fetch`")
    from transformers import AutoModelForSequenceClassification

    shipped = PROJECT_ROOT / "data" / "reward_models" / name
    report = json.loads((shipped / "report.json").read_text())["report"]
    cfg = load_config(PROJECT_ROOT / SHIPPED[name], [])
    tokenizer = load_tokenizer(str(smollm2))
    tokenizer.padding_side = "right"
    rows = load_pairs(cfg, str(PROJECT_ROOT / cfg.data.heldout_preferences), REQUIRED)
    pairs = tokenize_pairs(rows[: cfg.rm.heldout_max_pairs or None], tokenizer, cfg.data.max_length)
    merged = materialise(shipped, str(smollm2), tmp_path / "merged")
    model = AutoModelForSequenceClassification.from_pretrained(merged)
    chosen = score(model, tokenizer, pairs["chosen_ids"])
    rejected = score(model, tokenizer, pairs["rejected_ids"])
    assert len(chosen) == report["pairs"]
    assert pairwise_accuracy(chosen, rejected) == pytest.approx(report["accuracy"], abs=1e-9)
    margin = sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)
    assert margin == pytest.approx(report["mean_margin"], abs=1e-3)
