"""`rlhf train rm`: a Bradley-Terry reward model (TRL RewardTrainer) plus its held-out report.

The final model is saved as a plain AutoModelForSequenceClassification folder (`<output>/final`,
LoRA merged) so PPO can load it as reward and value model, and registered as the run's checkpoint.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judging.evaluation.rm_report import build_report, report_markdown
from training.callbacks import RegistryCallback
from training.common import (
    freeze_below_top,
    load_tokenizer,
    lora_config,
    quantization_kwargs,
    resolve_model_paths,
)
from training.config import TrainConfig
from training.hf_runner import HFRunResult, common_args, run_registered
from training.preferences import load_pairs, pair_half, tokenize_pairs

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

REQUIRED = ("prompt", "chosen", "rejected")


def train_rm(
    cfg: TrainConfig, *, database_url: str, data_dir: Path, resume: bool = False
) -> HFRunResult:
    """Train the reward model, save `final/`, write report.json/.md, register it."""
    resolve_model_paths(cfg)
    tokenizer = load_tokenizer(cfg.model.base_model)
    tokenizer.padding_side = "right"
    rows = pair_half(load_pairs(cfg, cfg.data.preferences, REQUIRED), cfg.rm.pair_half)
    train = tokenize_pairs(rows, tokenizer, cfg.data.max_length)
    heldout = None
    if cfg.data.heldout_preferences and not cfg.data.hub_dataset:
        rows = load_pairs(cfg, cfg.data.heldout_preferences, REQUIRED)
        rows = rows[: cfg.rm.heldout_max_pairs or None]
        heldout = tokenize_pairs(rows, tokenizer, cfg.data.max_length)

    def build(cfg: TrainConfig, out: Path, steps: int, callbacks: list[Any]) -> Any:
        return _trainer(cfg, out, steps, callbacks, tokenizer, train)

    def after(trainer: Any, registrar: RegistryCallback) -> None:
        _finalise(cfg, trainer, registrar, tokenizer, heldout, n_train=len(train["chosen_ids"]))

    return run_registered(
        cfg,
        algorithm="rm",
        database_url=database_url,
        data_dir=data_dir,
        resume=resume,
        build=build,
        examples=len(train["chosen_ids"]),
        after=after,
        save_checkpoints=False,
    )


def _trainer(
    cfg: TrainConfig,
    out: Path,
    steps: int,
    callbacks: list[Any],
    tokenizer: PreTrainedTokenizerBase,
    train: dict[str, list[Any]],
) -> Any:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_config import RewardConfig
    from trl.trainer.reward_trainer import RewardTrainer

    model = AutoModelForSequenceClassification.from_pretrained(
        cfg.model.base_model, num_labels=1, **quantization_kwargs(cfg)
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.rm.train_top_layers and not cfg.lora.enabled:
        freeze_below_top(model, cfg.rm.train_top_layers)
    args = RewardConfig(
        **common_args(cfg, out, steps, save=False),
        center_rewards_coefficient=cfg.rm.center_rewards_coefficient or None,
        max_length=None,
        disable_dropout=True,
    )
    dataset = Dataset.from_dict(
        {"chosen_ids": train["chosen_ids"], "rejected_ids": train["rejected_ids"]}
    )
    peft_config = lora_config(cfg, "SEQ_CLS")
    if peft_config is not None and cfg.rm.train_top_layers:
        # Adapters on the top layers only: backpropagation stops there, as with full tuning.
        n = int(model.config.num_hidden_layers)
        peft_config.layers_to_transform = list(range(max(0, n - cfg.rm.train_top_layers), n))
    return RewardTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sequences: list[list[int]],
    batch: int = 16,
) -> list[float]:
    """Reward of each token sequence (read at its last non-pad token)."""
    import torch

    scores: list[float] = []
    model.eval()
    pad = int(tokenizer.pad_token_id)
    with torch.no_grad():
        for start in range(0, len(sequences), batch):
            chunk = sequences[start : start + batch]
            width = max(len(s) for s in chunk)
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in chunk])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk])
            logits = model(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device)
            ).logits
            scores.extend(float(x) for x in logits[:, 0].float().cpu())
    return scores


def _finalise(
    cfg: TrainConfig,
    trainer: Any,
    registrar: RegistryCallback,
    tokenizer: PreTrainedTokenizerBase,
    heldout: dict[str, list[Any]] | None,
    n_train: int,
) -> None:
    model = trainer.accelerator.unwrap_model(trainer.model)
    out = Path(trainer.args.output_dir)
    if hasattr(model, "merge_and_unload"):
        # The unmerged adapter (LoRA + score head) is a few MB: small enough to ship in a repo.
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    final = out / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    step = int(trainer.state.global_step)
    metrics = dict(registrar.logs.get(registrar.metrics_step(step), {}))
    if heldout is not None:
        report = build_report(
            chosen=score(model, tokenizer, heldout["chosen_ids"]),
            rejected=score(model, tokenizer, heldout["rejected_ids"]),
            chosen_lengths=heldout["chosen_len"],
            rejected_lengths=heldout["rejected_len"],
            n_bins=cfg.rm.calibration_bins,
        )
        card = _model_card(cfg, final, n_train, step)
        (out / "report.json").write_text(
            json.dumps({"report": report, "model_card": card}, indent=2), encoding="utf-8"
        )
        (out / "report.md").write_text(report_markdown(report, card), encoding="utf-8")
        metrics.update(
            {
                "heldout/accuracy": report["accuracy"],
                "heldout/ece": report["ece"],
                "heldout/reward_length_pearson": report["reward_length_pearson"],
                "heldout/pairs": report["pairs"],
            }
        )
    registrar.register(step, final, metrics, metrics_step=registrar.metrics_step(step))


def _model_card(cfg: TrainConfig, final: Path, n_train: int, step: int) -> dict[str, Any]:
    return {
        "run": cfg.run.name,
        "model": str(final),
        "base_model": cfg.model.base_model,
        "objective": "Bradley-Terry pairwise loss (TRL RewardTrainer)",
        "training_pairs": n_train,
        "pair_half": cfg.rm.pair_half,
        "data": cfg.data.hub_dataset or cfg.data.preferences,
        "steps": step,
        "learning_rate": cfg.optim.learning_rate,
        "adapter": "LoRA (merged)" if cfg.lora.enabled else "full fine-tuning",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "intended_use": "reward signal for PPO experiments in this lab",
        "limitations": (
            "learns whatever its preference data rewards, biases included (see the reward-length "
            "correlation in the report); a proxy to be over-optimised, not a judge"
        ),
    }
