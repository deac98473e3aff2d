"""The exported preference JSONL loads with `datasets` and TRL's DPOTrainer trains a step on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from judging.analysis.exports import preference_records, to_jsonl
from tests.research_helpers import judged_study


@pytest.mark.parametrize("conversational", [False, True], ids=["standard", "conversational"])
def test_dpo_trainer_takes_one_step_on_the_exported_pairs(
    db_session: Session, tmp_path: Path, tiny_models: dict[str, Path], conversational: bool
) -> None:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    judged = judged_study(db_session, tmp_path, prompts=6)
    path = tmp_path / "preferences.jsonl"
    records = preference_records(
        db_session, judged.study.id, key=b"k", conversational=conversational
    )
    path.write_text(to_jsonl(records), encoding="utf-8")

    dataset = load_dataset("json", data_files=str(path), split="train")
    assert dataset.num_rows == len(records) > 0
    assert {"prompt", "chosen", "rejected", "study", "rater", "verdict"} <= set(
        dataset.column_names
    )

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["policy"])
    tokenizer.pad_token = "<|endoftext|>"
    model = AutoModelForCausalLM.from_pretrained(tiny_models["policy"])
    ref = AutoModelForCausalLM.from_pretrained(tiny_models["policy"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        per_device_train_batch_size=4,
        max_steps=1,
        learning_rate=1e-2,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        max_length=256,
    )
    trainer = DPOTrainer(
        model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    output = trainer.train()
    assert output.global_step == 1
    assert torch.isfinite(torch.tensor(output.training_loss))
    changed = any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert changed
