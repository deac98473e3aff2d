"""Sampling settings on every row, no mixing, like-with-like growth, the evaluation reward model
and bad input (missing/corrupt adapter, foreign tokenizer): tiny models in PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from judging.data import registry
from judging.data.models import Checkpoint, Evaluation, Generation
from tests.evaluation_models import register_lab, small_config


def _lab(
    factory: sessionmaker[Session], models: dict[str, Path], adapter: Path | None = None
) -> Any:
    with factory() as session:
        lab = register_lab(session, models, adapter or models["lora_small"])
        session.commit()
        return lab


def _evaluation(factory: sessionmaker[Session], checkpoint_id: int) -> Evaluation:
    with factory() as session:
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == checkpoint_id)
        )
        assert evaluation is not None
        session.expunge(evaluation)
        return evaluation


def _count(factory: sessionmaker[Session], checkpoint_id: int) -> int:
    with factory() as session:
        return int(
            session.scalar(select(func.count()).where(Generation.checkpoint_id == checkpoint_id))
            or 0
        )


def _run(factory: Any, lab: Any, checkpoint_id: int, config: Any) -> Any:
    from training.evaluation.worker import enqueue, process_one

    set_id = enqueue(factory, prompt_set_name=lab.prompt_set_name)
    return process_one(
        factory, config=config, worker="w", prompt_set_id=set_id, checkpoint_id=checkpoint_id
    )


def test_resumed_job_refuses_rows_of_other_settings(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    lab = _lab(committed_factory, eval_models)
    assert _run(committed_factory, lab, lab.checkpoint.id, small_config(limit=2)).status == "done"
    assert _count(committed_factory, lab.checkpoint.id) == 2
    with committed_factory() as session:  # re-queue the job as a resume would find it
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == lab.checkpoint.id)
        )
        assert evaluation is not None
        evaluation.status, evaluation.summary = "pending", None
        session.commit()
    other = small_config(sampling={"max_new_tokens": 8, "temperature": 0.7})
    outcome = _run(committed_factory, lab, lab.checkpoint.id, other)
    assert outcome.status == "failed"
    assert "other sampling settings" in (outcome.error or "") and "\n" not in outcome.error
    failed = _evaluation(committed_factory, lab.checkpoint.id)
    assert failed.status == "failed" and failed.summary is None
    assert _count(committed_factory, lab.checkpoint.id) == 2  # nothing generated or mixed


def test_growth_only_against_a_base_of_the_same_settings(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    lab = _lab(committed_factory, eval_models)
    _run(committed_factory, lab, lab.base.id, small_config())
    hotter = small_config(sampling={"max_new_tokens": 8, "temperature": 0.7})
    _run(committed_factory, lab, lab.checkpoint.id, hotter)
    summary = _evaluation(committed_factory, lab.checkpoint.id).summary or {}
    assert summary["length_growth"] is None and "other sampling settings" in summary["growth_note"]
    base = _evaluation(committed_factory, lab.base.id).summary or {}
    assert base["settings_key"] != summary["settings_key"]
    assert base["length_growth"] == 1.0 and "length_growth_untruncated" in base
    assert summary["kl_settings"] == {"temperature": 0.7, "exact": True}


def test_evaluation_reward_model_is_scored_beside_the_training_one(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    import torch
    from transformers import LlamaForSequenceClassification

    from tests.evaluation_models import tiny_config

    torch.manual_seed(5)
    other_rm = tmp_path / "eval_rm"
    tokenizer_files = eval_models["rm"]
    size = json.loads((tokenizer_files / "config.json").read_text())["vocab_size"]
    LlamaForSequenceClassification(tiny_config(size, num_labels=1)).save_pretrained(other_rm)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (tokenizer_files / name).is_file():
            shutil.copy(tokenizer_files / name, other_rm / name)
    lab = _lab(committed_factory, eval_models)
    outcome = _run(
        committed_factory, lab, lab.checkpoint.id, small_config(eval_reward_model=str(other_rm))
    )
    assert outcome.status == "done", outcome.error
    with committed_factory() as session:
        rows = list(
            session.scalars(select(Generation).where(Generation.checkpoint_id == lab.checkpoint.id))
        )
    assert all(r.reward_score is not None and r.eval_reward_score is not None for r in rows)
    assert any(r.reward_score != r.eval_reward_score for r in rows)
    summary = _evaluation(committed_factory, lab.checkpoint.id).summary or {}
    assert summary["eval_reward"]["n"] == summary["reward"]["n"] == len(rows)


def test_default_evaluation_reward_model_is_the_other_half(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    from judging.evaluation.results import default_eval_reward_model

    with committed_factory() as session:
        lab = register_lab(session, eval_models, eval_models["lora_small"])
        halves = {}
        for half in ("first", "second"):
            rm_run = registry.start_run(
                session,
                name=f"{lab.run_name}-rm-{half}",
                algorithm="rm",
                base_model=str(eval_models["base"]),
                config={"rm": {"pair_half": half}},
            )
            path = tmp_path / f"{lab.run_name}-rm-{half}"
            path.mkdir()
            registry.register_checkpoint(session, run_id=rm_run.id, step=5, path=path)
            halves[half] = str(path)
        run = session.get(Checkpoint, lab.checkpoint.id).run  # type: ignore[union-attr]
        assert default_eval_reward_model(session, run) is None  # its RM is not a half-RM
        run.reward_model = halves["first"]
        assert default_eval_reward_model(session, run) == halves["second"]
        run.reward_model = halves["second"]
        assert default_eval_reward_model(session, run) == halves["first"]
        for half in halves.values():
            shutil.rmtree(half)
        session.rollback()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_adapter_fails_the_job_with_one_line(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(eval_models["lora_small"], adapter)
    lab = _lab(committed_factory, eval_models, adapter)
    weights = next(adapter.glob("adapter_model.*"))
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(b"not a safetensors file")
    outcome = _run(committed_factory, lab, lab.checkpoint.id, small_config())
    assert outcome.status == "failed"
    assert "adapter" in outcome.error and str(adapter) in outcome.error
    assert "\n" not in outcome.error
    failed = _evaluation(committed_factory, lab.checkpoint.id)
    assert failed.error == outcome.error and failed.summary is None
    assert _count(committed_factory, lab.checkpoint.id) == 0


def test_reward_model_with_another_tokenizer_fails_the_job(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    foreign = tmp_path / "rm"
    shutil.copytree(eval_models["rm"], foreign)
    tokenizer = AutoTokenizer.from_pretrained(foreign)
    tokenizer.add_tokens(["<|a-token-the-policy-lacks|>"])
    tokenizer.save_pretrained(foreign)
    lab = _lab(committed_factory, eval_models)
    outcome = _run(
        committed_factory, lab, lab.checkpoint.id, small_config(reward_model=str(foreign))
    )
    assert outcome.status == "failed" and "\n" not in outcome.error
    assert f"reward model {foreign} has another tokenizer than the policy" in outcome.error
    assert _evaluation(committed_factory, lab.checkpoint.id).summary is None
    assert _count(committed_factory, lab.checkpoint.id) == 0


def test_unknown_eval_config_key_fails_the_asked_job(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path, pg_url: str
) -> None:
    from tests.integration.test_cli_bad_input import one_line_error, rlhf

    lab = _lab(committed_factory, eval_models)
    bad = tmp_path / "eval.yaml"
    bad.write_text("sampling:\n  temperature: 0.7\n  top_k: 5\n", encoding="utf-8")
    result = rlhf(
        tmp_path,
        "evaluate",
        "--checkpoint",
        str(lab.checkpoint.id),
        "--prompt-set",
        lab.prompt_set_name,
        "--config",
        str(bad),
        DATABASE_URL=pg_url,
    )
    line = one_line_error(result)
    assert "unknown key 'sampling.top_k'" in line
    failed = _evaluation(committed_factory, lab.checkpoint.id)
    assert failed.status == "failed" and "unknown key 'sampling.top_k'" in (failed.error or "")
    assert failed.summary is None and _count(committed_factory, lab.checkpoint.id) == 0


def _other_rm(eval_models: dict[str, Path], root: Path, seed: int) -> str:
    """A second tiny reward model with the policy's tokenizer (other random weights)."""
    import torch
    from transformers import LlamaForSequenceClassification

    from tests.evaluation_models import tiny_config

    torch.manual_seed(seed)
    out = root / f"rm-{seed}"
    size = json.loads((eval_models["rm"] / "config.json").read_text())["vocab_size"]
    LlamaForSequenceClassification(tiny_config(size, num_labels=1)).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (eval_models["rm"] / name).is_file():
            shutil.copy(eval_models["rm"] / name, out / name)
    return str(out)


def _requeue(factory: sessionmaker[Session], checkpoint_id: int) -> None:
    """Put a finished job back as a resume would find it (rows kept, no summary)."""
    with factory() as session:
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == checkpoint_id)
        )
        assert evaluation is not None
        evaluation.status, evaluation.summary = "pending", None
        session.commit()


def _rows(factory: sessionmaker[Session], checkpoint_id: int) -> list[Generation]:
    with factory() as session:
        rows = list(
            session.scalars(
                select(Generation)
                .where(Generation.checkpoint_id == checkpoint_id)
                .order_by(Generation.prompt_id)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def test_every_row_records_what_scored_it(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 27 item 1: the reward model, the evaluation RM and their dtype are pinned per row."""
    judge = _other_rm(eval_models, tmp_path, 5)
    lab = _lab(committed_factory, eval_models)
    config = small_config(eval_reward_model=judge, reward_dtype="float32")
    assert _run(committed_factory, lab, lab.checkpoint.id, config).status == "done"
    rows = _rows(committed_factory, lab.checkpoint.id)
    assert rows and all(
        r.scored_by
        == {
            "reward_model": str(eval_models["rm"]),
            "reward_dtype": "float32",
            "eval_reward_model": judge,
            "eval_reward_dtype": "float32",
        }
        for r in rows
    )


def test_a_resume_keeps_the_evaluation_rm_its_rows_were_scored_by(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    """Auto-discovery picks the newest evaluation RM: a resume after another was registered must
    go on with the one the stored rows were scored by, not average two models' scores."""
    lab = _lab(committed_factory, eval_models)
    first, newer = _other_rm(eval_models, tmp_path, 5), _other_rm(eval_models, tmp_path, 6)

    def register_rm(half: str, path: str) -> None:
        with committed_factory() as session:
            rm_run = registry.start_run(
                session,
                name=f"{lab.run_name}-rm-{half}-{Path(path).name}",
                algorithm="rm",
                base_model=str(eval_models["base"]),
                config={"rm": {"pair_half": half}},
            )
            registry.register_checkpoint(session, run_id=rm_run.id, step=5, path=Path(path))
            session.commit()

    register_rm("first", str(eval_models["rm"]))  # the run's own RM: trained on the first half
    register_rm("second", first)
    assert _run(committed_factory, lab, lab.checkpoint.id, small_config(limit=2)).status == "done"
    assert {r.eval_reward_model for r in _scorers(committed_factory, lab)} == {first}
    register_rm("second", newer)  # registered while the job was stopped
    _requeue(committed_factory, lab.checkpoint.id)
    outcome = _run(committed_factory, lab, lab.checkpoint.id, small_config())
    assert outcome.status == "done", outcome.error
    rows = _rows(committed_factory, lab.checkpoint.id)
    assert len(rows) == 6
    assert {r.scored_by["eval_reward_model"] for r in rows} == {first}
    assert (_evaluation(committed_factory, lab.checkpoint.id).config or {})[
        "eval_reward_model"
    ] == first


def _scorers(factory: sessionmaker[Session], lab: Any) -> list[Any]:
    from types import SimpleNamespace

    return [SimpleNamespace(**(r.scored_by or {})) for r in _rows(factory, lab.checkpoint.id)]


@pytest.mark.parametrize("change", ["eval_reward_model", "reward_model", "reward_dtype"])
def test_a_resume_with_other_scorers_is_refused_naming_the_rescore(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path, change: str, pg_url: str
) -> None:
    """Bad input (issue 27): nothing is generated, nothing mixed; the message names the
    difference and the `rlhf rescore` command that reconciles the stored rows."""
    judge, other = _other_rm(eval_models, tmp_path, 5), _other_rm(eval_models, tmp_path, 6)
    lab = _lab(committed_factory, eval_models)
    before = {"eval_reward_model": judge, "reward_dtype": "float32"}
    after = {
        "eval_reward_model": {**before, "eval_reward_model": other},
        "reward_model": {**before, "reward_model": other},
        "reward_dtype": {**before, "reward_dtype": "bfloat16"},
    }[change]
    assert (
        _run(committed_factory, lab, lab.checkpoint.id, small_config(limit=2, **before)).status
        == "done"
    )
    stored = _rows(committed_factory, lab.checkpoint.id)
    _requeue(committed_factory, lab.checkpoint.id)
    outcome = _run(committed_factory, lab, lab.checkpoint.id, small_config(**after))
    assert outcome.status == "failed"
    error = outcome.error or ""
    assert "\n" not in error and change in error and "rlhf rescore" in error
    assert f"--checkpoint {lab.checkpoint.id}" in error
    if change != "reward_dtype":
        assert other in error
    rows = _rows(committed_factory, lab.checkpoint.id)
    assert [(r.id, r.reward_score, r.eval_reward_score) for r in rows] == [
        (r.id, r.reward_score, r.eval_reward_score) for r in stored
    ]
    failed = _evaluation(committed_factory, lab.checkpoint.id)
    assert failed.summary is None and (failed.config or {}).get("eval_reward_model") == judge

    # The command the message names reconciles the stored rows; the resume then goes on.
    import re
    import shlex

    from tests.integration.test_cli_bad_input import rlhf

    command = re.search(r"`rlhf (rescore [^`]+)`", error)
    assert command is not None, error
    result = rlhf(tmp_path, *shlex.split(command.group(1)), DATABASE_URL=pg_url)
    assert result.returncode == 0, result.stderr
    _requeue(committed_factory, lab.checkpoint.id)  # as `rlhf evaluate --checkpoint` does
    outcome = _run(committed_factory, lab, lab.checkpoint.id, small_config(**after))
    assert outcome.status == "done", outcome.error
    rows = _rows(committed_factory, lab.checkpoint.id)
    want = {
        "reward_model": after.get("reward_model", str(eval_models["rm"])),
        "reward_dtype": after["reward_dtype"],
        "eval_reward_model": after["eval_reward_model"],
        "eval_reward_dtype": after["reward_dtype"],
    }
    assert len(rows) == 6 and all(r.scored_by == want for r in rows)
    assert all(r.reward_score is not None and r.eval_reward_score is not None for r in rows)


def test_a_summary_never_averages_rows_of_two_scorers(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    from judging.data.models import Evaluation as Ev
    from judging.evaluation.results import SettingsMismatchError, finalize, job_prompts

    lab = _lab(committed_factory, eval_models)
    config = small_config()
    assert _run(committed_factory, lab, lab.checkpoint.id, config).status == "done"
    with committed_factory() as session:
        row = session.scalars(
            select(Generation).where(Generation.checkpoint_id == lab.checkpoint.id)
        ).first()
        assert row is not None
        row.scored_by = {**row.scored_by, "eval_reward_model": "/elsewhere/rm"}
        session.flush()
        evaluation = session.scalar(select(Ev).where(Ev.checkpoint_id == lab.checkpoint.id))
        assert evaluation is not None
        with pytest.raises(SettingsMismatchError, match="scored by"):
            finalize(session, evaluation, job_prompts(session, evaluation.prompt_set_id), config)
        session.rollback()


def test_the_reward_at_the_runs_own_response_length_is_reported_beside_it(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    """Issue 27 item 6: PPO optimised responses of `ppo.response_length` tokens; the score of the
    first that many tokens of each answer is stored and summarised beside the full one."""
    lab = _lab(committed_factory, eval_models)
    with committed_factory() as session:
        run = session.get(Checkpoint, lab.checkpoint.id).run  # type: ignore[union-attr]
        run.config = {"ppo": {"response_length": 3}}
        session.commit()
    config = small_config(sampling={"max_new_tokens": 8, "temperature": 1.0})
    assert _run(committed_factory, lab, lab.checkpoint.id, config).status == "done"
    rows = _rows(committed_factory, lab.checkpoint.id)
    assert any(r.token_count > 3 for r in rows)
    for r in rows:
        assert r.reward_at_train_length is not None
        if r.token_count <= 3:
            assert r.reward_at_train_length == pytest.approx(r.reward_score, abs=1e-4)
    summary = _evaluation(committed_factory, lab.checkpoint.id).summary or {}
    assert summary["train_response_length"] == 3
    assert summary["reward_at_train_length"]["n"] == len(rows)
    assert summary["reward_at_train_length"]["mean"] == pytest.approx(
        sum(r.reward_at_train_length for r in rows) / len(rows), abs=1e-6
    )
