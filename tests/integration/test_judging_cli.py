"""`rlhf raters` and `rlhf study` against a committed PostgreSQL database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from judging.data.models import Rater, Study
from judging.settings import get_settings
from judging.studies.raters import hash_token
from tests.judging_helpers import build_lab, judge_queue, tie


def test_invite_create_judge_and_export(cli_db: Session, tmp_path: Path) -> None:
    runner = CliRunner()
    lab = build_lab(cli_db, tmp_path, prompts=3, raters=())
    cli_db.commit()
    links = {}
    for name, extra in (("ann", []), ("ben", []), ("boss", ["--admin"])):
        result = runner.invoke(
            app, ["raters", "invite", name, *extra, "--base-url", "https://lab.example"]
        )
        assert result.exit_code == 0, result.output
        links[name] = re.search(r"https://lab\.example/invite#(\S+)", result.output).group(1)  # type: ignore[union-attr]
    ann = cli_db.scalar(select(Rater).where(Rater.name == "ann"))
    assert ann is not None and ann.token_hash == hash_token(links["ann"])
    assert links["ann"] not in ann.token_hash
    listed = runner.invoke(app, ["raters", "list"])
    assert "boss" in listed.output and "admin" in listed.output

    result = runner.invoke(
        app,
        [
            "study",
            "create",
            "cli-study",
            "-c",
            str(lab.trained[0].id),
            "--prompt-set",
            "ppo-lab-heldout",
            "-r",
            "ann",
            "-r",
            "ben",
            "--attention-rate",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 comparisons x 2 raters" in result.output
    bad = runner.invoke(
        app,
        [
            "study",
            "create",
            "again",
            "-c",
            str(lab.trained[0].id),
            "--prompt-set",
            "nope",
            "-r",
            "ann",
            "-r",
            "ben",
        ],
    )
    assert bad.exit_code != 0

    study = cli_db.scalar(select(Study).where(Study.name == "cli-study"))
    assert study is not None
    for rater in cli_db.scalars(select(Rater).where(Rater.name.in_(["ann", "ben"]))):
        judge_queue(cli_db, rater.id, tie)
    cli_db.commit()
    assert "6/6 judged" in runner.invoke(app, ["study", "list"]).output

    out = tmp_path / "export.jsonl"
    result = runner.invoke(
        app, ["study", "export", str(study.id), "--format", "jsonl", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and {r["winner"] for r in rows} == {"tie"}
    assert not {r["rater"] for r in rows} & {"ann", "ben"}  # anonymised by default
    assert "deprecated: use `rlhf export judgements --study ID`" in result.output
    named = runner.invoke(app, ["export", "judgements", "--study", str(study.id), "--with-names"])
    assert named.exit_code == 0 and "ann" in named.output and "ppo-lab@10" in named.output


def test_revoke_from_the_cli_ends_sessions(cli_db: Session, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.judging_helpers import login

    runner = CliRunner()
    lab = build_lab(cli_db, tmp_path, prompts=2, raters=("ann",))
    cli_db.commit()
    with TestClient(create_app(get_settings())) as client:
        login(client, lab.tokens["ann"])
        assert client.get("/need-invite").status_code == 401  # the notice page is public
        result = runner.invoke(app, ["raters", "revoke", "ann"])
        assert result.exit_code == 0, result.output
        assert client.get("/rate", follow_redirects=False).status_code == 303
        client.app.state.engine.dispose()  # type: ignore[attr-defined]
    assert "revoked" in runner.invoke(app, ["raters", "list"]).output
    missing = runner.invoke(app, ["raters", "revoke", "nobody"])
    assert missing.exit_code == 1 and "does not exist" in str(missing.exception)


def test_cli_creates_lists_and_resumes_an_adaptive_study(cli_db: Session, tmp_path: Path) -> None:
    from judging.studies import allocation

    runner = CliRunner()
    lab = build_lab(cli_db, tmp_path, prompts=40, steps=(10, 20), raters=("ann", "ben"))
    cli_db.commit()
    base = ["study", "create"]
    common = ["--prompt-set", "ppo-lab-heldout", "-r", "ann", "-r", "ben", "--attention-rate", "0"]
    two = ["-c", str(lab.trained[0].id), "-c", str(lab.trained[1].id)]
    refused = runner.invoke(
        app, [*base, "one", "-c", str(lab.trained[0].id), *common, "--allocation", "adaptive"]
    )
    assert refused.exit_code != 0 and "at least two" in str(refused.exception)
    refused = runner.invoke(
        app, [*base, "sure", *two, *common, "--allocation", "adaptive", "--target", "1"]
    )
    assert refused.exit_code != 0 and "(0.5, 1)" in str(refused.exception)
    assert cli_db.scalar(select(Study)) is None
    created = runner.invoke(app, [*base, "adaptive", *two, *common, "--allocation", "adaptive"])
    assert created.exit_code == 0, created.output
    assert "adaptive allocation" in created.output
    listed = runner.invoke(app, ["study", "list"])
    assert "adaptive: 0 of 160 verdicts so far" in listed.output, listed.output
    study = cli_db.scalar(select(Study).where(Study.name == "adaptive"))
    assert study is not None
    not_decided = runner.invoke(app, ["study", "resume", str(study.id)])
    assert not_decided.exit_code != 0 and "not decided" in str(not_decided.exception)
    # Decided as the stopping rule would have it (the rule itself is tested elsewhere).
    study.decided_at, study.decided_after, study.allocation_p = func.now(), 0, 0.92
    cli_db.commit()
    allocation.recompute(cli_db, study, wait=True)
    cli_db.commit()
    assert "decided after 0 of 160 verdicts" in runner.invoke(app, ["study", "list"]).output
    resumed = runner.invoke(app, ["study", "resume", str(study.id), "--target", "0.95"])
    assert resumed.exit_code == 0 and "until P reaches 0.950" in resumed.output, resumed.output
