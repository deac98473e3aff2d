"""One scored sequence for RM training, PPO rewards and evaluation (tiny models, real TRL code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation_models import EVAL_PROMPTS


def _rollouts(
    models: dict[str, Path], max_new_tokens: int
) -> tuple[list[list[int]], list[list[int]], object]:
    from training.generation.base import ModelRef, SamplingParams, chat_prompt_ids
    from training.generation.hf import TransformersGenerator

    generator = TransformersGenerator(ModelRef(str(models["base"])), batch_size=3)
    tokenizer = generator.tokenizer
    # The tiny random model rarely says <|im_end|>: force it into half the rollouts by hand.
    params = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=max_new_tokens)
    results = generator.generate(EVAL_PROMPTS, params, list(range(len(EVAL_PROMPTS))))
    eos = int(tokenizer.eos_token_id)
    responses = []
    for i, r in enumerate(results):
        ids = list(r.token_ids)
        assert r.finish_reason == "stop" or len(ids) == max_new_tokens
        if i % 2 == 0:
            ids = [*ids[:3], eos]
        responses.append(ids)
    prompts = [chat_prompt_ids(tokenizer, p) for p in EVAL_PROMPTS]
    return prompts, responses, tokenizer


def test_evaluation_score_equals_ppo_reward(eval_models: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.evaluation.scoring import RewardScorer
    from training.ppo_trl import ppo_scores

    prompts, responses, tokenizer = _rollouts(eval_models, 10)
    assert any(tokenizer.eos_token_id in r for r in responses)
    assert any(tokenizer.eos_token_id not in r for r in responses)
    scorer = RewardScorer(str(eval_models["rm"]), batch_size=4)
    ours = scorer.score(prompts, responses)

    # PPO: left-padded queries and fixed-width rollouts as TRL's batch_generation returns them;
    # after EOS the policy keeps sampling (filler 7s) and TRL's truncate_response must drop it.
    pad = int(tokenizer.pad_token_id)
    width_q = max(len(p) for p in prompts)
    queries = torch.tensor([[pad] * (width_q - len(p)) + p for p in prompts])
    rollouts = torch.tensor([r + [7] * (10 - len(r)) for r in responses])
    model = AutoModelForSequenceClassification.from_pretrained(
        eval_models["rm"], dtype=torch.float32
    )
    model.config.pad_token_id = pad
    eos = int(tokenizer.eos_token_id)
    theirs = ppo_scores(model.eval(), queries, rollouts, pad_token_id=pad, stop_token_id=eos)
    assert ours == pytest.approx(theirs.tolist(), abs=1e-4)


def test_rm_training_pairs_are_the_scored_sequence(eval_models: dict[str, Path]) -> None:
    from training.generation.base import ModelRef, load_tokenizer
    from training.preferences import tokenize_pairs
    from training.sequences import prompt_ids, scored_sequence, text_response_ids

    tokenizer = load_tokenizer(ModelRef(str(eval_models["base"])))
    rows = [{"prompt": "Why is the sky blue?", "chosen": "Rayleigh.", "rejected": "No idea"}]
    pairs = tokenize_pairs(rows, tokenizer, 512)
    chosen = text_response_ids(tokenizer, "Rayleigh.")
    expected = scored_sequence(
        prompt_ids(tokenizer, rows[0]["prompt"]), chosen, tokenizer.eos_token_id
    )
    assert pairs["chosen_ids"][0] == expected
    assert expected[-1] == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_scored_sequence_stops_at_the_first_eos() -> None:
    from training.sequences import scored_sequence

    assert scored_sequence([5, 6], [9, 2, 9, 2], eos_id=2) == [5, 6, 9, 2]
    assert scored_sequence([5, 6], [9, 9], eos_id=2) == [5, 6, 9, 9]


def test_a_response_with_the_pad_id_is_scored_as_ppo_scores_it(
    eval_models: dict[str, Path],
) -> None:
    """Issue 27 item 2: TRL masks every pad id (`<|endoftext|>`, id 0) and reads the score before
    the first one, so a sampled pad ends the response PPO scored; the evaluation must read the
    score at the same token."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.evaluation.scoring import RewardScorer
    from training.ppo_trl import ppo_scores

    prompts, responses, tokenizer = _rollouts(eval_models, 10)
    pad, eos = int(tokenizer.pad_token_id), int(tokenizer.eos_token_id)
    assert pad == 0 != eos
    # A pad before an EOS, a pad in an answer without EOS, a pad as the first token.
    responses = [
        [*responses[0][:2], pad, 9, eos],
        [*responses[1][:3], pad, 11, 12],
        [pad, *responses[2][:3]],
        *responses[3:],
    ]
    scorer = RewardScorer(str(eval_models["rm"]), batch_size=4)
    ours = scorer.score(prompts, responses)
    width_q = max(len(p) for p in prompts)
    queries = torch.tensor([[pad] * (width_q - len(p)) + p for p in prompts])
    rollouts = torch.tensor([r + [7] * (10 - len(r)) for r in responses])
    model = AutoModelForSequenceClassification.from_pretrained(
        eval_models["rm"], dtype=torch.float32
    )
    model.config.pad_token_id = pad
    theirs = ppo_scores(model.eval(), queries, rollouts, pad_token_id=pad, stop_token_id=eos)
    assert ours == pytest.approx(theirs.tolist(), abs=1e-4)


def test_scored_sequence_ends_before_the_first_pad() -> None:
    from training.sequences import scored_sequence

    assert scored_sequence([5, 6], [9, 0, 9, 2], eos_id=2, pad_id=0) == [5, 6, 9]
    assert scored_sequence([5, 6], [9, 2, 0], eos_id=2, pad_id=0) == [5, 6, 9, 2]
    assert scored_sequence([5, 6], [0, 9], eos_id=2, pad_id=0) == [5, 6]
