"""A study that gets fewer attention checks than its rate asks for says so, with the number of
spare base samples needed and the command that makes them: at creation (CLI and admin form),
on the study page and on the QC page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from judging.data.models import Comparison, Study
from judging.studies import pairing
from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, switch_to

PROMPTS = 20
# Three sentences, the first unique per prompt: a truncated copy differs from every other one.
TEXTS = {
    ("10", i): f"Answer {i} starts here. Then it goes on. Finally it stops, friend {i}."
    for i in range(PROMPTS)
}


def _create(session: Session, lab: Lab, raters: int, **kwargs: Any) -> Study:
    return studies.create_study(
        session,
        name="checks",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters[:raters]],
        raters_per_comparison=2,
        attention_check_rate=0.2,
        seed=5,
        **kwargs,
    )


def _checks(session: Session, study: Study) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Comparison)
            .where(Comparison.study_id == study.id, Comparison.kind == "attention")
        )
        or 0
    )


def test_as_many_raters_as_verdicts_and_no_spare_base_warns(
    db_session: Session, tmp_path: Path
) -> None:
    # One base sample per checkpoint, nothing spare: a check could only reuse a judged
    # response, and with 2 raters for 2 verdicts both raters judge every item.
    lab = build_lab(db_session, tmp_path, prompts=PROMPTS, steps=(10,), texts=TEXTS)
    study = _create(db_session, lab, raters=2)
    assert _checks(db_session, study) == 0
    assert study.attention_checks_missing == 4  # round(0.2 x 20)
    warning = pairing.attention_warning(db_session, study)
    assert warning is not None
    assert "no attention checks" in warning and "4 spare base samples" in warning
    assert "2 raters for 2 verdicts per comparison" in warning
    # Replicate 0 (shared seed) and one per checkpoint are taken: a third is the spare.
    assert f"rlhf evaluate --checkpoint {lab.base.id}" in warning
    assert "--prompt-set ppo-lab-heldout --replicates 3" in warning


@pytest.mark.parametrize(("base_samples", "raters"), [(2, 2), (1, 3)])
def test_no_warning_when_checks_could_be_built(
    db_session: Session, tmp_path: Path, base_samples: int, raters: int
) -> None:
    # A spare base sample per prompt, or a third rater who can take a check built from an item
    # the other two judge: the checks exist and nothing warns.
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=PROMPTS,
        steps=(10,),
        texts=TEXTS,
        base_samples=base_samples,
        raters=("alice", "bob", "carol"),
    )
    study = _create(db_session, lab, raters=raters)
    assert _checks(db_session, study) == 4
    assert study.attention_checks_missing == 0
    assert pairing.attention_warning(db_session, study) is None


@pytest.mark.parametrize("seed", range(8))
def test_a_spare_per_prompt_always_gives_every_check(
    db_session: Session, tmp_path: Path, seed: int
) -> None:
    # An off-topic check takes its decoy from another prompt's spare sample. When that prompt
    # also gets a check, the check has no spare left and can go to nobody (both raters judge
    # the item): whether that happened depended on the seed (and ids) before decoys avoided
    # prompts that later checks need.
    lab = build_lab(db_session, tmp_path, prompts=PROMPTS, steps=(10,), texts=TEXTS, base_samples=2)
    study = studies.create_study(
        db_session,
        name="checks",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters[:2]],
        raters_per_comparison=2,
        attention_check_rate=0.2,
        seed=seed,
    )
    assert (_checks(db_session, study), study.attention_checks_missing) == (4, 0)


def test_no_warning_when_no_checks_were_asked_for(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=PROMPTS, steps=(10,), texts=TEXTS)
    study = studies.create_study(
        db_session,
        name="no checks",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    assert pairing.attention_warning(db_session, study) is None


def test_admin_form_and_qc_page_show_the_warning(
    client: Any, db_session: Session, tmp_path: Path
) -> None:
    lab = build_lab(
        db_session,
        tmp_path,
        prompts=PROMPTS,
        steps=(10,),
        texts=TEXTS,
        raters=("alice", "bob", "admin"),
    )
    alice, bob, _ = lab.raters
    switch_to(client, lab.tokens["admin"])
    form = client.get("/admin/studies/new").text
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', form)
    assert csrf
    response = client.post(
        "/admin/studies",
        data={
            "csrf_token": csrf.group(1),
            "name": "form checks",
            "checkpoints": str(lab.trained[0].id),
            "prompt_set": str(lab.prompt_set_id),
            "raters": [str(alice.id), str(bob.id)],
            "raters_per_comparison": "2",
            "attention_check_rate": "0.2",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    page = client.get(response.headers["location"]).text
    command = (
        f"rlhf evaluate --checkpoint {lab.base.id} --prompt-set ppo-lab-heldout --replicates 3"
    )
    assert 'id="attention-warning"' in page and command in page
    study = db_session.scalars(select(Study).where(Study.name == "form checks")).one()
    qc_page = client.get(f"/admin/studies/{study.id}/qc").text
    warning = re.search(r'<[^>]+id="attention-warning".*?</(p|div|section)>', qc_page, re.S)
    assert warning and "4 spare base samples" in warning.group(0)
    assert command in warning.group(0)


def test_cli_study_create_warns(cli_db: Session, tmp_path: Path) -> None:
    lab = build_lab(cli_db, tmp_path, prompts=PROMPTS, steps=(10,), texts=TEXTS)
    cli_db.commit()
    result = CliRunner().invoke(
        app,
        [
            "study",
            "create",
            "cli-checks",
            "-c",
            str(lab.trained[0].id),
            "--prompt-set",
            "ppo-lab-heldout",
            "-r",
            "alice",
            "-r",
            "bob",
            "--attention-rate",
            "0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert "warning: no attention checks" in flat and "4 spare base samples" in flat
    assert f"rlhf evaluate --checkpoint {lab.base.id} --prompt-set ppo-lab-heldout" in flat
    assert "--replicates 3" in flat


def test_admin_form_creates_a_study_sharing_base_responses(
    client: Any, db_session: Session, tmp_path: Path
) -> None:
    raters = ("r1", "r2", "r3", "r4", "admin")
    lab = build_lab(
        db_session, tmp_path, prompts=4, steps=(10, 20), texts=TEXTS, raters=raters, base_samples=1
    )
    switch_to(client, lab.tokens["admin"])
    form = client.get("/admin/studies/new").text
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', form)
    assert csrf and 'name="base_reuse"' in form
    data = {
        "csrf_token": csrf.group(1),
        "name": "shared",
        "checkpoints": [str(c.id) for c in lab.trained],
        "prompt_set": str(lab.prompt_set_id),
        "raters": [str(r.id) for r in lab.raters[:4]],
        "raters_per_comparison": "2",
        "attention_check_rate": "0",
        "base_reuse": "2",
    }
    response = client.post("/admin/studies", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text[:300]
    study = db_session.scalars(select(Study).where(Study.name == "shared")).one()
    assert study.base_reuse == 2  # two checkpoints on the one base sample per prompt
    assert "shared by up to 2 comparisons" in client.get(response.headers["location"]).text
    refused = client.post("/admin/studies", data={**data, "name": "x", "base_reuse": "3"})
    assert refused.status_code == 409 and "needs 6 raters" in refused.text
