"""The evaluation worker end to end on tiny models in PostgreSQL: generate, score, KL, summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from judging.data.models import Checkpoint, Evaluation, Generation
from tests.evaluation_models import EVAL_PROMPTS, register_lab, small_config


class Killed(BaseException):
    """Stands for the worker process dying mid-job (not an error the worker can record)."""


def _lab(factory: sessionmaker[Session], models: dict[str, Path]) -> Any:
    with factory() as session:
        lab = register_lab(session, models, models["lora_small"])
        session.commit()
        return lab


def _rows(factory: sessionmaker[Session], checkpoint_id: int) -> list[Generation]:
    with factory() as session:
        query = select(Generation).where(Generation.checkpoint_id == checkpoint_id)
        return list(session.scalars(query.order_by(Generation.prompt_id)))


def _evaluation(factory: sessionmaker[Session], checkpoint_id: int) -> Evaluation:
    with factory() as session:
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == checkpoint_id)
        )
        assert evaluation is not None
        session.expunge(evaluation)
        return evaluation


def _process(
    factory: sessionmaker[Session],
    config: Any,
    set_id: int,
    checkpoint_id: int,
    worker: str = "w",
    **extra: Any,
) -> Any:
    from training.evaluation.worker import process_one

    return process_one(
        factory,
        config=config,
        worker=worker,
        prompt_set_id=set_id,
        checkpoint_id=checkpoint_id,
        **extra,
    )


def _requeue_base(factory: sessionmaker[Session], lab: Any, replicates: int) -> int:
    """Ask for more base samples per prompt (as the demo does for blind judging)."""
    from judging.evaluation.queue import default_prompt_set, requeue

    with factory() as session:
        set_id = default_prompt_set(session, lab.prompt_set_name).id
        requeue(session, checkpoint_id=lab.base.id, prompt_set_id=set_id, replicates=replicates)
        session.commit()
        return set_id


def test_worker_evaluates_base_then_checkpoint(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    from training.evaluation.worker import watch

    lab = _lab(committed_factory, eval_models)
    config = small_config()
    outcomes = watch(
        committed_factory,
        config=config,
        worker="w1",
        prompt_set_name=lab.prompt_set_name,
        once=True,
    )
    assert [(o.checkpoint_id, o.status) for o in outcomes] == [
        (lab.base.id, "done"),
        (lab.checkpoint.id, "done"),
    ]
    base_rows, rows = (
        _rows(committed_factory, lab.base.id),
        _rows(committed_factory, lab.checkpoint.id),
    )
    assert len(base_rows) == len(rows) == len(EVAL_PROMPTS)
    assert all(r.kl_k1 == 0.0 and r.kl_k3 == 0.0 for r in base_rows)
    assert all(r.reward_score is not None and r.kl_k3 is not None and r.kl_k3 >= 0 for r in rows)
    assert any(r.kl_k3 > 0 for r in rows if r.kl_k3 is not None)
    assert {r.backend for r in rows} == {"transformers"}
    assert rows[0].model_ref == f"{eval_models['base']}+{eval_models['lora_small']}"
    from training.generation.attention import resolve_dtype

    assert rows[0].sampling_params == {
        "temperature": 1.0,
        "top_p": 1.0,
        "max_new_tokens": 8,
        "seed": 1234,
        "dtype": resolve_dtype("auto", "cpu"),  # the resolved name, never "auto"
        "sampler": "inverse-cdf",
    }
    assert len({r.settings_key for r in rows + base_rows}) == 1
    assert (
        [r.seed for r in rows]
        == [r.seed for r in base_rows]
        == [1234 + i for i in range(len(rows))]
    )
    assert 0 < rows[0].token_count <= 8 and "seq_rep_4" in rows[0].diagnostics
    evaluation = _evaluation(committed_factory, lab.checkpoint.id)
    summary = evaluation.summary or {}
    assert evaluation.status == "done" and evaluation.config["batch_size"] == 4
    assert summary["reward"]["n"] == len(EVAL_PROMPTS)
    assert summary["kl_k3"]["ci_low"] <= summary["kl_k3"]["mean"] <= summary["kl_k3"]["ci_high"]
    base_summary = _evaluation(committed_factory, lab.base.id).summary or {}
    assert summary["length_growth"] == pytest.approx(
        summary["length_tokens"] / base_summary["length_tokens"]
    )
    assert base_summary["kl_k1"]["mean"] == 0.0 and base_summary["length_growth"] == 1.0
    with committed_factory() as session:
        assert {c.status for c in session.scalars(select(Checkpoint))} == {"evaluated"}
    # Nothing left to do: a second pass claims no job and writes no row.
    assert (
        watch(
            committed_factory,
            config=config,
            worker="w2",
            prompt_set_name=lab.prompt_set_name,
            once=True,
        )
        == []
    )
    assert len(_rows(committed_factory, lab.checkpoint.id)) == len(EVAL_PROMPTS)


def _dying_loader(batches_before_death: int, death: type[BaseException] | None = None) -> Any:
    from training.evaluation.models import load_job_models

    def load(checkpoint: Checkpoint, config: Any) -> Any:
        models = load_job_models(checkpoint, config)
        real, calls = models.generator.generate, [0]

        def generate(*args: Any, **kwargs: Any) -> Any:
            if calls[0] == batches_before_death:
                raise (death or Killed)()
            calls[0] += 1
            return real(*args, **kwargs)

        models.generator.generate = generate  # type: ignore[method-assign]
        return models

    return load


def test_ctrl_c_gives_the_job_back_at_once(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    """A worker stopped with Ctrl-C (the demo stops its background evaluator so) releases its claim:
    the next worker resumes the job now, not after `stale_after_s`, and keeps the committed rows."""
    from training.evaluation.worker import enqueue, process_one

    lab = _lab(committed_factory, eval_models)
    config = small_config(batch_size=2)
    set_id = enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    with pytest.raises(KeyboardInterrupt):
        process_one(
            committed_factory,
            config=config,
            worker="stopped",
            prompt_set_id=set_id,
            checkpoint_id=lab.checkpoint.id,
            load_models=_dying_loader(1, KeyboardInterrupt),
        )
    released = _evaluation(committed_factory, lab.checkpoint.id)
    assert released.status == "pending" and released.worker is None
    assert len(_rows(committed_factory, lab.checkpoint.id)) == 2
    outcome = _process(committed_factory, config, set_id, lab.checkpoint.id, worker="next")
    assert outcome is not None and outcome.status == "done"
    rows = _rows(committed_factory, lab.checkpoint.id)
    assert len(rows) == len(EVAL_PROMPTS) == len({r.prompt_id for r in rows})


def test_killed_worker_resumes_without_duplicates(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    from training.evaluation.worker import enqueue, process_one

    lab = _lab(committed_factory, eval_models)
    config = small_config(batch_size=2)
    set_id = enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    with pytest.raises(Killed):
        process_one(
            committed_factory,
            config=config,
            worker="dies",
            prompt_set_id=set_id,
            checkpoint_id=lab.checkpoint.id,
            load_models=_dying_loader(2),
        )
    assert len(_rows(committed_factory, lab.checkpoint.id)) == 4  # two committed batches of 2
    stuck = _evaluation(committed_factory, lab.checkpoint.id)
    assert stuck.status == "running" and stuck.summary is None
    # A live claim is not taken over; once its heartbeat is stale, another worker resumes it.
    assert _process(committed_factory, config, set_id, lab.checkpoint.id, worker="w2") is None
    stale = small_config(batch_size=2, stale_after_s=1e-6)
    outcome = _process(committed_factory, stale, set_id, lab.checkpoint.id, worker="w2")
    assert outcome is not None and outcome.status == "done"
    rows = _rows(committed_factory, lab.checkpoint.id)
    assert sorted(r.prompt_id for r in rows) == sorted({r.prompt_id for r in rows})
    assert len(rows) == len(EVAL_PROMPTS)
    done = _evaluation(committed_factory, lab.checkpoint.id)
    assert (
        done.status == "done"
        and done.worker == "w2"
        and (done.summary or {})["n"] == len(EVAL_PROMPTS)
    )


def test_failure_marks_checkpoint_failed_with_the_error(
    committed_factory: Any, eval_models: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from training.evaluation.worker import enqueue, process_one

    adapter = tmp_path / "adapter"
    shutil.copytree(eval_models["lora_small"], adapter)
    with committed_factory() as session:
        lab = register_lab(session, eval_models, adapter)
        session.commit()
    shutil.rmtree(adapter)  # the checkpoint folder vanished after registration
    set_id = enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    outcome = process_one(
        committed_factory,
        config=small_config(),
        worker="w",
        prompt_set_id=set_id,
        checkpoint_id=lab.checkpoint.id,
    )
    assert outcome is not None and outcome.status == "failed"
    evaluation = _evaluation(committed_factory, lab.checkpoint.id)
    assert evaluation.status == "failed" and "does not exist" in (evaluation.error or "")
    with committed_factory() as session:
        checkpoint = session.get(Checkpoint, lab.checkpoint.id)
        assert checkpoint is not None and checkpoint.status == "failed"
        assert str(adapter) in (checkpoint.error or "")
        count = session.scalar(
            select(func.count()).where(Generation.checkpoint_id == lab.checkpoint.id)
        )
        assert count == 0


def test_growth_is_filled_in_when_the_base_finishes_later(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    from training.evaluation.worker import enqueue

    lab = _lab(committed_factory, eval_models)
    config = small_config(thresholds={"max": {"length_growth": 0.5}})
    set_id = enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    for checkpoint_id in (lab.checkpoint.id, lab.base.id):  # the checkpoint first, on purpose
        _process(committed_factory, config, set_id, checkpoint_id)
        if checkpoint_id == lab.checkpoint.id:
            early = _evaluation(committed_factory, lab.checkpoint.id)
            assert early.summary is not None and early.summary["length_growth"] is None
            assert early.flags == []
    late = _evaluation(committed_factory, lab.checkpoint.id)
    base = _evaluation(committed_factory, lab.base.id)
    assert late.summary is not None and base.summary is not None
    assert late.summary["length_growth"] == pytest.approx(
        late.summary["length_tokens"] / base.summary["length_tokens"]
    )
    assert "length_growth>0.5" in (late.flags or [])


def test_growth_uses_a_base_requeued_for_extra_samples(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    """The demo re-queues the base for the samples blind judging needs; its summary (replicate
    0) is complete all along, so a checkpoint finishing meanwhile gets growth and flags at once
    (they waited for the extra samples, an hour in a demo run)."""
    from training.evaluation.worker import enqueue

    lab = _lab(committed_factory, eval_models)
    config = small_config(thresholds={"max": {"length_growth": 0.5}})
    set_id = enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    _process(committed_factory, config, set_id, lab.base.id)
    set_id = _requeue_base(committed_factory, lab, replicates=3)
    _process(committed_factory, config, set_id, lab.checkpoint.id)
    base = _evaluation(committed_factory, lab.base.id)
    late = _evaluation(committed_factory, lab.checkpoint.id)
    assert base.status == "pending" and base.summary is not None
    assert late.summary is not None and late.summary["length_growth"] == pytest.approx(
        late.summary["length_tokens"] / base.summary["length_tokens"]
    )
    assert "length_growth>0.5" in (late.flags or [])


def test_base_replicates_have_their_own_seeds(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    """A blind study needs one base sample per judged checkpoint: extra replicates, new seeds."""
    from training.evaluation.worker import watch

    lab = _lab(committed_factory, eval_models)
    config = small_config()
    watch(
        committed_factory,
        config=config,
        worker="w1",
        prompt_set_name=lab.prompt_set_name,
        once=True,
    )
    summary_before = _evaluation(committed_factory, lab.base.id).summary
    set_id = _requeue_base(committed_factory, lab, replicates=3)
    outcome = _process(committed_factory, config, set_id, lab.base.id, worker="w2")
    assert outcome is not None and outcome.status == "done"
    base_rows = _rows(committed_factory, lab.base.id)
    checkpoint_seeds = {r.seed for r in _rows(committed_factory, lab.checkpoint.id)}
    assert sorted(r.replicate for r in base_rows) == sorted([0, 1, 2] * len(EVAL_PROMPTS))
    extra = [r for r in base_rows if r.replicate > 0]
    assert len({(r.prompt_id, r.seed) for r in extra}) == len(extra)
    assert not {r.seed for r in extra} & checkpoint_seeds
    # The aggregates stay on the shared seed: the summary does not move.
    assert _evaluation(committed_factory, lab.base.id).summary == summary_before


def _never_load(checkpoint: Checkpoint, config: Any) -> Any:
    raise AssertionError(f"models loaded for checkpoint {checkpoint.id}: nothing to generate")


def test_a_second_runs_base_copies_the_first_runs_rows(
    committed_factory: Any, eval_models: dict[str, Path]
) -> None:
    """Runs of a sweep share their base: its second evaluation copies rows instead of sampling
    them again, unless the reward model differs (the scores would not be the same)."""
    from judging.data import registry
    from training.evaluation.worker import enqueue

    lab = _lab(committed_factory, eval_models)
    config = small_config()
    set_id = enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    _process(committed_factory, config, set_id, lab.base.id)
    with committed_factory() as session:
        twins = []
        for name, rm in (("same-rm", eval_models["rm"]), ("other-rm", eval_models["base"])):
            run = registry.start_run(
                session,
                name=f"{lab.run_name}-{name}",
                algorithm="ppo",
                base_model=str(eval_models["base"]),
                config={},
                reward_model=str(rm),
            )
            twins.append(registry.ensure_base_checkpoint(session, run).id)
        session.commit()
    enqueue(committed_factory, prompt_set_name=lab.prompt_set_name)
    outcome = _process(committed_factory, config, set_id, twins[0], load_models=_never_load)
    assert outcome is not None and outcome.status == "done"
    fields = ("prompt_id", "seed", "text", "token_count", "reward_score", "settings_key")
    first = [tuple(getattr(r, f) for f in fields) for r in _rows(committed_factory, lab.base.id)]
    copied = [tuple(getattr(r, f) for f in fields) for r in _rows(committed_factory, twins[0])]
    assert copied == first and len(first) == len(EVAL_PROMPTS)
    assert (
        _evaluation(committed_factory, twins[0]).summary
        == _evaluation(committed_factory, lab.base.id).summary
    )
    # Another reward model: the rows are not the same scores, so nothing is copied.
    outcome = _process(committed_factory, config, set_id, twins[1], load_models=_never_load)
    assert outcome is not None and outcome.status == "failed"
    assert "models loaded" in (outcome.error or "")
