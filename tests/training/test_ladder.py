"""Best-of-n ladders (issue 24): build (resumable, atomic), import (validated, BoN(n) checkpoints
with the analytic KL), and the normal evaluation path over the imported responses."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from judging.evaluation.ladder import best_of, bon_kl, ladder_ns
from tests.training.conftest import PROMPTS

N_PROMPTS = 4
N_MAX = 4


def test_analytic_kl_of_best_of_n() -> None:
    assert bon_kl(1) == 0.0
    assert bon_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert bon_kl(16) == pytest.approx(2.772588722 - 0.9375)  # 1.8351
    values = [bon_kl(n) for n in ladder_ns(64)]
    assert values == sorted(values) and len(set(values)) == len(values)
    with pytest.raises(ValueError):
        bon_kl(0)


def test_rungs_are_powers_of_two_then_n_max() -> None:
    assert ladder_ns(16) == [1, 2, 4, 8, 16]
    assert ladder_ns(12) == [1, 2, 4, 8, 12]
    assert ladder_ns(1) == [1]


def test_best_of_n_takes_the_argmax_among_the_first_n_only() -> None:
    scores = [0.1, 0.5, 0.3, 0.9, 2.0]
    assert [best_of(scores, n) for n in (1, 2, 3, 4, 5)] == [0, 1, 1, 3, 4]
    assert best_of([0.2, 0.7, 0.7], 3) == 1  # a tie goes to the lowest index
    with pytest.raises(ValueError):
        best_of(scores, 6)


def _prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "heldout.jsonl"
    rows = [{"id": f"t{i}", "prompt": p} for i, p in enumerate(PROMPTS[:N_PROMPTS])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def _spec(tiny_models: dict[str, Path], prompts: Path, out: Path, **changes: Any) -> Any:
    from training.ladder import LadderSpec

    settings: dict[str, Any] = {
        "n_max": N_MAX,
        "max_new_tokens": 6,
        "batch_size": 3,  # not a divisor of n_max: the last batch of a prompt is smaller
    }
    return LadderSpec(
        prompts=str(prompts),
        reward_model=str(tiny_models["reward"]),
        out=str(out),
        base_model=str(tiny_models["policy"]),
        **{**settings, **changes},
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


class Interrupt(Exception):
    pass


def test_build_resumes_after_an_interrupt_to_the_same_bytes(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from judging.errors import ConfigError
    from training.ladder import build_ladder

    prompts = _prompt_file(tmp_path)
    whole = tmp_path / "whole.jsonl.gz"
    result = build_ladder(_spec(tiny_models, prompts, whole))
    assert (result.added, result.prompts) == (N_PROMPTS, N_PROMPTS) and result.tokens > 0
    rows = _lines(whole)
    assert rows[0]["ladder"] == 1 and rows[0]["n_max"] == N_MAX
    assert [(r["prompt_id"], r["sample"]) for r in rows[1:]] == [
        (f"t{i}", k) for i in range(N_PROMPTS) for k in range(N_MAX)
    ]
    assert all(isinstance(r["proxy_score"], float) and r["tokens"] for r in rows[1:])
    # Samples of one prompt differ (own seeds), and the seeds do not depend on the batch.
    assert len({tuple(r["tokens"]) for r in rows[1 : 1 + N_MAX]}) > 1

    cut = tmp_path / "cut.jsonl.gz"
    seen: list[int] = []

    def stop_at_third(done: int, total: int, tokens: int) -> None:
        seen.append(done)
        if done == 3:
            raise Interrupt  # like Ctrl-C inside the loop, before the chunk is written

    with pytest.raises(Interrupt):
        build_ladder(_spec(tiny_models, prompts, cut), on_prompt=stop_at_third)
    assert not cut.with_name(cut.name + ".partial").exists()
    assert {r["prompt_id"] for r in _lines(cut)[1:]} == {"t0", "t1"}  # whole prompts only
    again = build_ladder(_spec(tiny_models, prompts, cut))
    assert again.added == N_PROMPTS - 2
    assert cut.read_bytes() == whole.read_bytes()
    assert build_ladder(_spec(tiny_models, prompts, cut)).added == 0  # finished: nothing to do

    with pytest.raises(ConfigError, match="n_max differ"):
        build_ladder(_spec(tiny_models, prompts, cut, n_max=8))


def test_shards_merge_into_the_bytes_of_an_unsharded_build(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    import dataclasses

    from training.ladder import build_ladder

    prompts = _prompt_file(tmp_path)
    whole = tmp_path / "whole.jsonl.gz"
    build_ladder(_spec(tiny_models, prompts, whole))
    sharded = tmp_path / "sharded.jsonl.gz"
    spec = _spec(tiny_models, prompts, sharded)
    first = build_ladder(dataclasses.replace(spec, shard=(1, 2)))
    assert first.added == N_PROMPTS // 2 and not sharded.exists()
    build_ladder(dataclasses.replace(spec, shard=(0, 2)))
    assert len(list(tmp_path.glob("sharded.jsonl.gz.shard*"))) == 2
    merged = build_ladder(spec)
    assert merged.added == 0  # every prompt came from a shard
    assert sharded.read_bytes() == whole.read_bytes()
    assert not list(tmp_path.glob("sharded.jsonl.gz.shard*"))


def test_an_interrupt_while_writing_leaves_the_last_complete_file(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the write of the second prompt's file: the first prompt's file stays, whole
    and readable, and no .partial is left behind."""
    import training.ladder as ladder
    from judging.evaluation.ladder import iter_rows

    out = tmp_path / "torn.jsonl.gz"
    calls: list[int] = []
    real_fsync = ladder.os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(ladder.os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        ladder.build_ladder(_spec(tiny_models, _prompt_file(tmp_path), out))
    assert not out.with_name(out.name + ".partial").exists()
    rows = [row for _, row in iter_rows(out)]
    assert rows[0]["ladder"] == 1
    assert [(r["prompt_id"], r["sample"]) for r in rows[1:]] == [("t0", k) for k in range(N_MAX)]


def _prompt_set(session: Session, name: str) -> int:
    from judging.data.prompts import PromptRecord, store_prompt_set

    records = [PromptRecord(f"t{i}", p) for i, p in enumerate(PROMPTS[:N_PROMPTS])]
    prompt_set = store_prompt_set(session, name=name, split="heldout", records=records, source=None)
    session.commit()
    return prompt_set.id


@pytest.fixture(scope="module")
def ladder_file(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built ladder, through the CLI (`rlhf ladder build`); tests read it, never change it."""
    from cli.main import app

    root = tmp_path_factory.mktemp("ladder")
    out = root / "ladder" / "tiny.jsonl.gz"
    args = ["ladder", "build", "--prompts", str(_prompt_file(root))]
    args += ["--n-max", str(N_MAX), "--reward-model", str(tiny_models["reward"])]
    args += ["--out", str(out), "--base-model", str(tiny_models["policy"])]
    args += ["--max-new-tokens", "6", "--batch-size", "3", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _import(path: Path, run: str, prompt_set: str) -> Any:
    from cli.main import app

    return CliRunner().invoke(
        app, ["ladder", "import", str(path), "--run", run, "--prompt-set", prompt_set]
    )


def test_import_registers_bon_checkpoints_scored_by_the_normal_path(
    ladder_file: Path, tiny_models: dict[str, Path], cli_db: Session
) -> None:
    from judging.analysis.dashboard.checkpoints import checkpoint_points
    from judging.data.models import Evaluation, Generation, TrainingMetric, TrainingRun
    from judging.evaluation.ladder import SEED_MASK

    _prompt_set(cli_db, "ho-ladder")
    result = _import(ladder_file, "bon-tiny", "ho-ladder")
    assert result.exit_code == 0, result.output
    cli_db.expire_all()
    run = cli_db.scalar(select(TrainingRun).where(TrainingRun.name == "bon-tiny"))
    assert run is not None and run.algorithm == "best-of-n" and run.status == "finished"
    assert run.reward_model == str(tiny_models["reward"])
    steps = [(c.step, c.kind) for c in run.checkpoints]
    assert steps == [(0, "base"), (1, "trained"), (2, "trained"), (4, "trained")]

    rows = _lines(ladder_file)[1:]
    scores = {
        (r["prompt_id"], r["sample"]): r["proxy_score"] for r in rows
    }  # what BoN(n) must choose from
    seeds = {(r["prompt_id"], r["sample"]): r["seed"] for r in rows}
    for checkpoint in run.checkpoints:
        n = max(checkpoint.step, 1)
        assert checkpoint.metrics.get("objective/kl", 0.0) == pytest.approx(bon_kl(n))
        gens = cli_db.scalars(
            select(Generation).where(Generation.checkpoint_id == checkpoint.id)
        ).all()
        assert len(gens) == N_PROMPTS
        for g in gens:
            pid = g.prompt.external_id
            first_n = [scores[(pid, k)] for k in range(n)]
            want = first_n.index(max(first_n))  # the first of the best among samples 0..n-1
            assert g.diagnostics["best_of_n"] == {"n": n, "sample": want}
            assert g.reward_score == pytest.approx(scores[(pid, want)])
            assert g.seed == seeds[(pid, want)] & SEED_MASK  # the sample's own seed
            assert g.kl_k3 == pytest.approx(bon_kl(n))
            assert g.backend == "best-of-n"
        evaluation = cli_db.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == checkpoint.id)
        )
        assert evaluation is not None and evaluation.status == "done" and evaluation.summary
        assert evaluation.summary["coverage"] == {"rows": N_PROMPTS, "prompts": N_PROMPTS}
        assert evaluation.summary["max_new_tokens"] == 6  # the ladder's, not the eval config's
        assert evaluation.config["sampling"]["max_new_tokens"] == 6
        if checkpoint.kind != "base":
            assert "length_growth" in evaluation.summary  # vs the base: same settings key
    # Every prompt's BoN(n) score never falls as n grows (nested choices).
    means = [c.metrics["best_of_n/proxy_mean"] for c in run.checkpoints if c.kind != "base"]
    assert means == sorted(means)
    series = cli_db.scalars(
        select(TrainingMetric).where(
            TrainingMetric.run_id == run.id, TrainingMetric.name == "objective/kl"
        )
    ).all()
    assert {m.step: m.value for m in series} == pytest.approx({n: bon_kl(n) for n in (1, 2, 4)})

    # The dashboard reads the held-out KL of the summary, as for a PPO checkpoint.
    points = checkpoint_points(cli_db, run_ids=[run.id])
    assert [p.value("kl_k3") for p in points] == pytest.approx([0.0, *map(bon_kl, (1, 2, 4))])

    # `rlhf rescore` (the product's path for an evaluation RM) scores the imported rows.
    from cli.main import app

    ids = [str(c.id) for c in run.checkpoints]
    args = ["rescore", "--eval-reward-model", str(tiny_models["reward"]), "--prompt-set"]
    args += ["ho-ladder", *[a for i in ids for a in ("--checkpoint", i)]]
    rescored = CliRunner().invoke(app, args)
    assert rescored.exit_code == 0, rescored.output
    cli_db.expire_all()
    for checkpoint in run.checkpoints:
        evaluation = cli_db.scalar(
            select(Evaluation).where(Evaluation.checkpoint_id == checkpoint.id)
        )
        assert evaluation is not None and evaluation.summary
        assert evaluation.summary["eval_reward"]["n"] == N_PROMPTS

    again = _import(ladder_file, "bon-tiny", "ho-ladder")  # a run of that name exists
    assert again.exit_code != 0 and "already exists" in str(again.exception)


def _rewrite(src: Path, dest: Path, edit: Any) -> Path:
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    dest.write_text("\n".join(edit(lines)) + "\n", "utf-8")  # plain JSONL: read as well
    return dest


def _line(prompt: int, sample: int) -> int:
    """1-based line of a sample (the header is line 1)."""
    return 2 + prompt * N_MAX + sample


BAD = {
    # name: (edit of the lines, the line the error names, what it says)
    "missing-prompt": (
        lambda ls: [x for x in ls if '"prompt_id":"t2"' not in x],
        None,
        "prompt 't2' (position 2 of 'ho-bad') has no samples",
    ),
    "missing-sample": (
        lambda ls: ls[:-1],
        _line(3, N_MAX - 2),
        f"prompt 't3' (position 3 of 'ho-bad') has {N_MAX - 1} of {N_MAX} samples",
    ),
    "duplicate-sample": (
        lambda ls: [*ls, ls[_line(0, 1) - 1]],
        _line(N_PROMPTS, 0),
        f"duplicate sample 1 of prompt 't0' (first on line {_line(0, 1)})",
    ),
    "foreign-prompt-id": (
        lambda ls: [
            x.replace('"prompt_id":"t1"', '"prompt_id":"x1"') if i == _line(1, 0) - 1 else x
            for i, x in enumerate(ls)
        ],
        _line(1, 0),
        "prompt_id 'x1' is not in prompt set 'ho-bad'",
    ),
    "foreign-prompt-text": (
        lambda ls: [
            x.replace(PROMPTS[1], "What is the capital of Spain?") if i == _line(1, 2) - 1 else x
            for i, x in enumerate(ls)
        ],
        _line(1, 2),
        "prompt text of 't1' differs from prompt set 'ho-bad'",
    ),
    "no-header": (lambda ls: ls[1:], 1, "first line must be a ladder header (ladder: 1)"),
    "negative-seed": (
        lambda ls: [
            x.replace('"seed":', '"seed":-') if i == _line(2, 1) - 1 else x
            for i, x in enumerate(ls)
        ],
        _line(2, 1),
        "'seed' must be a non-negative integer",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_ladder_file_is_refused_naming_the_line_with_nothing_imported(
    case: str, ladder_file: Path, cli_db: Session, tmp_path: Path
) -> None:
    from judging.data.models import Checkpoint, Generation, TrainingRun
    from judging.errors import InputFileError

    edit, line, message = BAD[case]
    _prompt_set(cli_db, "ho-bad")
    bad = _rewrite(ladder_file, tmp_path / f"{case}.jsonl", edit)
    result = _import(bad, f"bon-{case}", "ho-bad")
    assert result.exit_code != 0
    assert isinstance(result.exception, InputFileError), result.output
    where = f"{bad}:{line}: " if line is not None else f"{bad}: "
    assert str(result.exception) == where + message + (
        "; is the build finished?" if "samples" in message else ""
    )
    cli_db.expire_all()
    assert cli_db.scalar(select(TrainingRun).where(TrainingRun.name == f"bon-{case}")) is None
    assert cli_db.scalars(select(Checkpoint)).all() == []
    assert cli_db.scalars(select(Generation)).all() == []


def test_a_truncated_gzip_ladder_is_refused(
    ladder_file: Path, cli_db: Session, tmp_path: Path
) -> None:
    from judging.errors import InputFileError

    _prompt_set(cli_db, "ho-gz")
    torn = tmp_path / "torn.jsonl.gz"
    torn.write_bytes(ladder_file.read_bytes()[:-20])
    result = _import(torn, "bon-torn", "ho-gz")
    assert isinstance(result.exception, InputFileError)
    assert "not a complete gzip file" in str(result.exception)


def test_pairs_command_builds_disjoint_gold_labelled_pairs_and_ships_both_models(
    tiny_models: dict[str, Path], cli_db: Session, tmp_path: Path
) -> None:
    """`rlhf ladder pairs` end to end on the tiny model: brief/detailed samples, gold labels
    with flips and length bias, two RMs on disjoint prompts, each shipped with its report."""
    from cli.main import app
    from judging.data.models import TrainingRun
    from training.onpolicy import BRIEF_DETAILED

    prompts = tmp_path / "train.jsonl"
    texts = [f"{p} (variant {v})" for v in range(2) for p in PROMPTS]
    prompts.write_text(
        "".join(json.dumps({"id": f"tr{i}", "prompt": t}) + "\n" for i, t in enumerate(texts)),
        "utf-8",
    )
    out, shipped = tmp_path / "pairs", tmp_path / "shipped"
    args = ["ladder", "pairs", "--out-dir", str(out), "--prompts", str(prompts)]
    args += ["--base-model", str(tiny_models["policy"]), "--proxy-prompts", "8"]
    args += ["--eval-prompts", "8", "--max-new-tokens", "8", "--batch-size", "4"]
    args += ["--heldout-share", "0.5", "--length-bias", "0.3", "--ship-to", str(shipped)]
    for setting in ("run.max_steps=2", "optim.batch_size=2", "rm.train_top_layers=1"):
        args += ["--set", setting]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    ids = {}
    for role in ("proxy", "eval"):
        rows = [json.loads(x) for x in (out / role / "samples.jsonl").read_text().splitlines()]
        ids[role] = {r["prompt_id"] for r in rows}
        assert all([x["style"] for x in r["responses"]] == list(BRIEF_DETAILED) for r in rows)
        stats = json.loads((out / role / "stats.json").read_text())
        assert stats["labeller"] == {"flip": 0.25, "length_bias": 0.3, "seed": 0}
        assert stats["pairs"]["heldout"] > 0
        name = f"rm-ladder-{role}"
        folder = shipped / name
        assert {p.name for p in folder.iterdir()} >= {
            "adapter_config.json",
            "adapter_model.safetensors",
            "model_card.json",
            "report.json",
            "report.md",
        }
        report = json.loads((folder / "report.json").read_text())["report"]
        low, high = report["accuracy_ci95"]
        assert 0.0 <= low <= report["accuracy"] <= high <= 1.0
        assert report["pairs"] == stats["pairs"]["heldout"]
        assert "reward_length_pearson" in report and report["calibration"]
        assert "95% Wilson interval" in (folder / "report.md").read_text()
        card = json.loads((folder / "model_card.json").read_text())
        assert card["run"] == name and card["data"].endswith(f"{role}/train.jsonl")
        assert cli_db.scalar(select(TrainingRun).where(TrainingRun.name == name)) is not None
    assert ids["proxy"] and ids["eval"] and not ids["proxy"] & ids["eval"]
    assert "held-out pairs (< 300)" in result.output

    # The shipped proxy (adapter + score head) drives a ladder build: merged once, then read.
    ladder = tmp_path / "from-shipped.jsonl.gz"
    args = ["ladder", "build", "--prompts", str(_prompt_file(tmp_path)), "--n-max", "2"]
    args += ["--reward-model", str(shipped / "rm-ladder-proxy"), "--out", str(ladder)]
    args += ["--base-model", str(tiny_models["policy"]), "--max-new-tokens", "4"]
    built = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert built.exit_code == 0, built.output
    assert (tmp_path / "reward_models" / "rm-ladder-proxy-merged" / "config.json").is_file()
    assert len(_lines(ladder)) == 1 + 2 * N_PROMPTS
