"""`rlhf train sft` and `rlhf train dpo`: TRL SFTTrainer / DPOTrainer on the preference data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.common import load_tokenizer, lora_config, quantization_kwargs, resolve_model_paths
from training.config import TrainConfig
from training.hf_runner import HFRunResult, common_args, run_registered
from training.preferences import conversational, load_pairs


def _sft_rows(cfg: TrainConfig) -> list[dict[str, Any]]:
    """prompt + response JSONL, or the chosen side of preference pairs."""
    rows = load_pairs(cfg, cfg.data.preferences, ("prompt",))
    key = "response" if all(isinstance(r.get("response"), str) for r in rows) else "chosen"
    return conversational([r for r in rows if isinstance(r.get(key), str)], response_key=key)


def train_sft(
    cfg: TrainConfig, *, database_url: str, data_dir: Path, resume: bool = False
) -> HFRunResult:
    """Supervised fine-tuning on chosen (or given) responses; loss on the completion only."""
    resolve_model_paths(cfg)
    rows = _sft_rows(cfg)

    def build(cfg: TrainConfig, out: Path, steps: int, callbacks: list[Any]) -> Any:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM
        from trl.trainer.sft_config import SFTConfig
        from trl.trainer.sft_trainer import SFTTrainer

        tokenizer = load_tokenizer(cfg.model.base_model)
        tokenizer.padding_side = "right"
        model = AutoModelForCausalLM.from_pretrained(
            cfg.model.base_model, **quantization_kwargs(cfg)
        )
        model.config.pad_token_id = tokenizer.pad_token_id
        args = SFTConfig(**common_args(cfg, out, steps, save=True), max_length=cfg.data.max_length)
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(cfg, "CAUSAL_LM"),
            callbacks=callbacks,
        )

    return run_registered(
        cfg,
        algorithm="sft",
        database_url=database_url,
        data_dir=data_dir,
        resume=resume,
        build=build,
        examples=len(rows),
    )


def train_dpo(
    cfg: TrainConfig, *, database_url: str, data_dir: Path, resume: bool = False
) -> HFRunResult:
    """DPO on the RM's preference pairs, against an explicit frozen reference."""
    resolve_model_paths(cfg)
    rows = conversational(load_pairs(cfg, cfg.data.preferences, ("prompt", "chosen", "rejected")))

    def build(cfg: TrainConfig, out: Path, steps: int, callbacks: list[Any]) -> Any:
        return _dpo_trainer(cfg, out, steps, callbacks, rows)

    return run_registered(
        cfg,
        algorithm="dpo",
        database_url=database_url,
        data_dir=data_dir,
        resume=resume,
        build=build,
        examples=len(rows),
    )


def _dpo_trainer(
    cfg: TrainConfig, out: Path, steps: int, callbacks: list[Any], rows: list[dict[str, Any]]
) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    tokenizer = load_tokenizer(cfg.model.base_model)
    kwargs = quantization_kwargs(cfg)
    model = AutoModelForCausalLM.from_pretrained(cfg.model.base_model, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    ref = None
    if not cfg.lora.enabled:
        # An explicit copy: with ref_model=None TRL 1.12 reloads it from config._name_or_path.
        # With LoRA the reference is the base with the adapter disabled (no second copy).
        ref = AutoModelForCausalLM.from_pretrained(
            cfg.model.ref_model or cfg.model.base_model, **kwargs
        )
        ref.config.pad_token_id = tokenizer.pad_token_id
    args = DPOConfig(
        **common_args(cfg, out, steps, save=True),
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        max_length=cfg.data.max_length,
    )
    return DPOTrainer(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(cfg, "CAUSAL_LM"),
        callbacks=callbacks,
    )
