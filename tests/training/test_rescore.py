"""`rlhf rescore`: an evaluation RM scores already evaluated responses without generating them
again, giving the score the worker would have given at generation time, resumable, and the
summary gains the evaluation-RM figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from judging.data.models import Evaluation, Generation, Prompt
from tests.evaluation_models import EVAL_PROMPTS, register_lab, small_config


def _scores(factory: Any, checkpoint_id: int) -> list[float | None]:
    with factory() as session:
        return list(
            session.scalars(
                select(Generation.eval_reward_score)
                .where(Generation.checkpoint_id == checkpoint_id)
                .order_by(Generation.prompt_id)
            )
        )


def test_rescore_matches_scoring_at_generation_time(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    from training.evaluation.rescore import done_evaluations, rescore_evaluation
    from training.evaluation.scoring import RewardScorer
    from training.evaluation.worker import watch
    from training.generation.base import chat_prompt_ids

    with committed_factory() as session:
        lab = register_lab(session, eval_models, eval_models["lora_small"])
        session.commit()
    rm = str(eval_models["rm"])
    config = small_config(auto_eval_reward_model=False)  # no evaluation RM at generation time
    watch(
        committed_factory, config=config, worker="w", prompt_set_name=lab.prompt_set_name, once=True
    )
    assert _scores(committed_factory, lab.checkpoint.id) == [None] * len(EVAL_PROMPTS)
    # Tiny random models write token soup that does not survive decoding; give every response
    # ordinary text with known token ids, so the expected score is the one the worker computes
    # from sampled ids: RewardScorer.score(prompt ids, response ids [+ <|im_end|> if stopped]).
    scorer = RewardScorer(rm, batch_size=3)
    tok = scorer.tokenizer
    expected: dict[int, float] = {}
    with committed_factory() as session:
        rows = session.execute(
            select(Generation, Prompt.text).join(Prompt).where(Generation.replicate == 0)
        ).all()
        for n, (generation, prompt) in enumerate(rows):
            ids = tok(f"Answer number {n}: boil it for seven minutes.", add_special_tokens=False)[
                "input_ids"
            ]
            generation.text = tok.decode(ids)
            sampled = [*ids, tok.eos_token_id] if generation.finish_reason == "stop" else ids
            (expected[generation.id],) = scorer.score([chat_prompt_ids(tok, prompt)], [sampled])
        session.commit()

    calls: list[int] = []

    class Stop(Exception):
        pass

    def stop_after_first(n: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            raise Stop

    with committed_factory() as session:
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == lab.checkpoint.id)
        )
        assert evaluation is not None
        with pytest.raises(Stop):  # stopped after one committed batch
            rescore_evaluation(session, evaluation, scorer, batch_size=3, on_batch=stop_after_first)
    partial = _scores(committed_factory, lab.checkpoint.id)
    assert sum(s is not None for s in partial) == 3

    with committed_factory() as session:
        jobs = done_evaluations(session, evaluation.prompt_set_id)
        assert [j.checkpoint_id for j in jobs] == [lab.base.id, lab.checkpoint.id]
        scored = [rescore_evaluation(session, j, scorer, batch_size=3) for j in jobs]
    # The base is scored whole; the checkpoint only where the stopped run had not reached.
    assert scored == [len(EVAL_PROMPTS), len(EVAL_PROMPTS) - 3]
    got = _scores(committed_factory, lab.checkpoint.id)
    with committed_factory() as session:
        ids = session.scalars(
            select(Generation.id)
            .where(Generation.checkpoint_id == lab.checkpoint.id)
            .order_by(Generation.prompt_id)
        ).all()
    assert got == pytest.approx([expected[i] for i in ids], abs=1e-5)
    with committed_factory() as session:
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == lab.checkpoint.id)
        )
        assert evaluation is not None and evaluation.config["eval_reward_model"] == rm
        summary = evaluation.summary or {}
    assert summary["eval_reward"]["mean"] == pytest.approx(sum(got) / len(got), abs=1e-6)


def test_rescore_builds_the_prompt_with_the_policys_chat_template(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 27 item 4: the worker and PPO template the prompt with the policy's tokenizer; a
    reward model saved with another chat template must still read the policy's prompt ids."""
    import shutil

    from transformers import AutoTokenizer

    from training.evaluation.rescore import rescore_evaluation
    from training.evaluation.scoring import RewardScorer
    from training.evaluation.worker import watch
    from training.generation.base import ModelRef, chat_prompt_ids, load_tokenizer

    rm = tmp_path / "rm-other-template"
    shutil.copytree(eval_models["rm"], rm)
    tok = AutoTokenizer.from_pretrained(rm)
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\nJudge: {{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok.save_pretrained(rm)
    with committed_factory() as session:
        lab = register_lab(session, eval_models, eval_models["lora_small"])
        session.commit()
    config = small_config(auto_eval_reward_model=False)
    watch(
        committed_factory, config=config, worker="w", prompt_set_name=lab.prompt_set_name, once=True
    )
    scorer = RewardScorer(str(rm), batch_size=3)
    policy = load_tokenizer(ModelRef(str(eval_models["base"])))
    assert chat_prompt_ids(policy, "x") != chat_prompt_ids(scorer.tokenizer, "x")
    expected: dict[int, float] = {}
    with committed_factory() as session:
        rows = session.execute(
            select(Generation, Prompt.text)
            .join(Prompt)
            .where(Generation.checkpoint_id == lab.checkpoint.id)
        ).all()
        for n, (generation, prompt) in enumerate(rows):
            ids = policy(f"Answer {n}: seven minutes.", add_special_tokens=False)["input_ids"]
            generation.text = policy.decode(ids)
            sampled = [*ids, policy.eos_token_id] if generation.finish_reason == "stop" else ids
            (expected[generation.id],) = scorer.score([chat_prompt_ids(policy, prompt)], [sampled])
        session.commit()
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == lab.checkpoint.id)
        )
        assert evaluation is not None
        rescore_evaluation(session, evaluation, scorer, batch_size=3)
        got = {
            g.id: g.eval_reward_score
            for g in session.scalars(
                select(Generation).where(Generation.checkpoint_id == lab.checkpoint.id)
            )
        }
    assert got == pytest.approx(expected, abs=1e-5)
