"""The one place that imports `trl.experimental` (PPO): its API may change without deprecation.

A thin PPOTrainer subclass adds what TRL does not log (mean response length, truncation rate,
the KL coefficient in force) to every step's metrics before callbacks see them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from trl.experimental.ppo import PPOConfig, PPOTrainer
from trl.experimental.ppo.ppo_trainer import truncate_response
from trl.experimental.utils import get_reward

from training.config import TrainConfig


class GenerationStats:
    """Response lengths and truncations of the rollouts generated since the last log."""

    def __init__(self, stop_token_id: int) -> None:
        self.stop_token_id = stop_token_id
        self.lengths: list[int] = []
        self.truncated: list[bool] = []

    def record(self, sequences: torch.Tensor, context_length: int) -> None:
        responses = sequences[:, context_length:]  # (batch, new tokens)
        is_stop = responses == self.stop_token_id
        has_stop = is_stop.any(dim=1)
        first_stop = torch.where(has_stop, is_stop.int().argmax(dim=1) + 1, responses.shape[1])
        self.lengths.extend(int(n) for n in first_stop)
        self.truncated.extend(bool(not s) for s in has_stop)

    def pop(self) -> dict[str, float]:
        if not self.lengths:
            return {}
        stats = {
            "response_length_mean": sum(self.lengths) / len(self.lengths),
            "truncation_rate": sum(self.truncated) / len(self.truncated),
        }
        self.lengths, self.truncated = [], []
        return stats


class LabPPOTrainer(PPOTrainer):
    """PPOTrainer whose step logs carry response length, truncation rate and kl_coef."""

    gen_stats: GenerationStats | None = None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        logs = dict(logs)
        if "objective/kl" in logs:
            if self.gen_stats is not None:
                logs.update(self.gen_stats.pop())
            logs["objective/kl_coef"] = float(cast(Any, self.args).kl_coef)
        super().log(logs, start_time)

    def watch_generation(self, stats: GenerationStats) -> None:
        """Wrap the policy's `generate` so every rollout's lengths are counted."""
        policy = self.accelerator.unwrap_model(self.model).policy
        original = policy.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            stats.record(output.sequences, kwargs["input_ids"].shape[1])
            return output

        policy.generate = generate
        self.gen_stats = stats


def make_args(cfg: TrainConfig, out: Path, steps: int, kl_coef: float) -> Any:
    """TRL's PPOConfig for `steps` more rollout batches."""
    episodes_per_step = cfg.optim.batch_size * cfg.optim.gradient_accumulation_steps
    return PPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=cfg.optim.batch_size,
        gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps,
        num_mini_batches=cfg.ppo.num_mini_batches,
        total_episodes=steps * episodes_per_step,
        learning_rate=cfg.optim.learning_rate,
        lr_scheduler_type=cfg.optim.lr_scheduler_type,
        warmup_steps=cfg.optim.warmup_ratio,
        response_length=cfg.ppo.response_length,
        temperature=cfg.ppo.temperature,
        num_ppo_epochs=cfg.ppo.num_ppo_epochs,
        local_rollout_forward_batch_size=cfg.ppo.local_rollout_forward_batch_size,
        kl_coef=kl_coef,
        kl_estimator=cfg.ppo.kl.estimator,
        missing_eos_penalty=cfg.ppo.missing_eos_penalty or None,
        vf_coef=cfg.ppo.vf_coef,
        cliprange=cfg.ppo.cliprange,
        cliprange_value=cfg.ppo.cliprange_value,
        whiten_rewards=cfg.ppo.whiten_rewards,
        stop_token="eos",
        num_sample_generations=0,
        save_strategy="steps",
        save_steps=cfg.run.save_every,
        save_only_model=True,
        logging_steps=cfg.run.logging_steps,
        report_to=[] if cfg.run.report_to == "none" else [cfg.run.report_to],
        bf16=cfg.model.bf16,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        seed=cfg.run.seed,
        sft_model_path=cfg.model.base_model,
        reward_model_path=cfg.model.reward_model,
    )


def build_trainer(
    *,
    args: Any,
    tokenizer: PreTrainedTokenizerBase,
    policy: PreTrainedModel,
    ref_model: PreTrainedModel | None,
    reward_model: PreTrainedModel,
    value_model: PreTrainedModel,
    dataset: Any,
    peft_config: Any,
    callbacks: list[TrainerCallback],
) -> LabPPOTrainer:
    trainer = LabPPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref_model,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=dataset,
        eval_dataset=dataset.select(range(min(len(dataset), 1))),
        peft_config=peft_config,
        callbacks=callbacks,
    )
    trainer.watch_generation(GenerationStats(int(tokenizer.eos_token_id)))
    return trainer


@torch.no_grad()
def ppo_scores(
    reward_model: PreTrainedModel,
    queries: torch.Tensor,
    responses: torch.Tensor,
    *,
    pad_token_id: int,
    stop_token_id: int,
) -> torch.Tensor:
    """The reward PPO gives each rollout, by TRL's own steps (before `missing_eos_penalty`).

    queries: (B, Q) left-padded prompt ids; responses: (B, R) sampled ids. Kept beside the
    trainer so evaluation can be tested against exactly what PPOTrainer computes.
    """
    postprocessed = truncate_response(stop_token_id, pad_token_id, responses)  # (B, R)
    _, score, _ = get_reward(
        reward_model, torch.cat((queries, postprocessed), 1), pad_token_id, queries.shape[1]
    )
    return score
