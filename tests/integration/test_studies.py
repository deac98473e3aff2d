"""Studies in PostgreSQL: creation, extension, handover, QC numbers and exports."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judging.analysis import exports
from judging.data.models import Assignment, Comparison, Generation, Judgement, PromptSet
from judging.errors import ConflictError
from judging.studies import lookups, qc, rating, transfers
from judging.studies import service as studies
from judging.studies.assignment import back_to_back
from tests.judging_helpers import build_lab, checkpoint_side, judge_queue


def _assignments(session: Session, study_id: int) -> list[tuple[Assignment, Comparison]]:
    rows = session.execute(
        select(Assignment, Comparison)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .where(Comparison.study_id == study_id)
        .order_by(Assignment.rater_id, Assignment.position)
    )
    return list(rows)


def _check_invariants(session: Session, study_id: int, n: int) -> None:
    rows = _assignments(session, study_id)
    per_comparison: dict[int, list[int]] = defaultdict(list)
    per_rater: dict[int, list[int]] = defaultdict(list)
    kinds = {c.id: c.kind for _, c in rows}
    for a, c in rows:
        per_comparison[c.id].append(a.rater_id)
        per_rater[a.rater_id].append(c.prompt_id)
    assert all(
        len(rs) == n == len(set(rs)) for c, rs in per_comparison.items() if kinds[c] == "normal"
    )
    # An attention check repeats a real item's text, so only raters without that item take it.
    assert all(
        1 <= len(rs) == len(set(rs)) <= n
        for c, rs in per_comparison.items()
        if kinds[c] == "attention"
    )
    members = lookups.study_rater_ids(session, study_id)
    loads = [
        sum(1 for a, c in rows if a.rater_id == r and c.kind == "normal")
        for r in per_rater
        if r in members
    ]
    assert max(loads) - min(loads) <= 1
    for prompts in per_rater.values():
        assert back_to_back(prompts) == 0


def test_create_study_defaults_and_invariants(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=20, raters=("alice", "bob", "carol"))
    study = studies.create_study(
        db_session,
        name="s1",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0.1,
    )
    assert study.reference_checkpoint_id == lab.base.id
    kinds = Counter(
        c.kind
        for c in db_session.scalars(select(Comparison).where(Comparison.study_id == study.id))
    )
    # A check whose text some rater already judged goes only to raters without it, and one
    # that nobody could take without a repeat (look-alike test texts) is not created.
    assert kinds["normal"] == 40 and 1 <= kinds["attention"] <= 4
    _check_invariants(db_session, study.id, 2)
    attention = db_session.scalars(select(Comparison).where(Comparison.kind == "attention")).all()
    for c in attention:
        original = db_session.get(Generation, c.candidate_generation_id)
        assert c.degraded_text and original and c.degraded_text != original.text


def test_missing_generations_are_left_out(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=5)
    gone = db_session.scalar(
        select(Generation).where(
            Generation.checkpoint_id == lab.trained[0].id, Generation.prompt_id == lab.prompt_ids[0]
        )
    )
    db_session.delete(gone)
    db_session.flush()
    study = studies.create_study(
        db_session,
        name="gaps",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    assert (
        len(db_session.scalars(select(Comparison.id).where(Comparison.study_id == study.id)).all())
        == 4
    )


def test_bad_study_requests_are_refused(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=3)
    args = {
        "checkpoint_ids": [lab.trained[0].id],
        "prompt_set_id": lab.prompt_set_id,
        "rater_ids": [lab.raters[0].id],
    }
    with pytest.raises(ConflictError, match="at least that many raters"):
        studies.create_study(db_session, name="x", **args)
    db_session.get(PromptSet, lab.prompt_set_id).split = "train"  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="held-out"):
        studies.create_study(
            db_session, name="y", **{**args, "rater_ids": [r.id for r in lab.raters]}
        )


def _judge_first(session: Session, rater_id: int, count: int) -> list[int]:
    done = []
    for i in range(count):
        a = rating.next_assignment(session, rater_id)
        assert a is not None
        rating.serve(session, a)
        rating.record_judgement(
            session,
            rater_id=rater_id,
            public_id=a.public_id,
            choice="left",
            rationale=None,
            idempotency_key=f"k-{rater_id}-{i}",
        )
        done.append(a.id)
    return done


def _snapshot(session: Session, ids: list[int]) -> dict[int, tuple[object, ...]]:
    out = {}
    for aid in ids:
        a = session.get(Assignment, aid)
        j = session.scalar(select(Judgement).where(Judgement.assignment_id == aid))
        assert a is not None and j is not None
        out[aid] = (
            a.rater_id,
            a.public_id,
            a.position,
            a.status,
            a.checkpoint_side,
            j.id,
            j.choice,
        )
    return out


def test_extension_by_checkpoint_and_rater_leaves_done_work_alone(
    db_session: Session, tmp_path: Path
) -> None:
    lab = build_lab(
        db_session, tmp_path, prompts=12, steps=(10, 20, 30), raters=("alice", "bob", "carol")
    )
    alice, bob, carol = lab.raters
    study = studies.create_study(
        db_session,
        name="grow",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id],
        attention_check_rate=0,
    )
    done = _judge_first(db_session, alice.id, 5) + _judge_first(db_session, bob.id, 3)
    before = _snapshot(db_session, done)

    assert studies.add_checkpoints(db_session, study, [lab.trained[1].id]) == 12
    assert _snapshot(db_session, done) == before
    _check_invariants(db_session, study.id, 2)

    moved = studies.add_rater(db_session, study, carol.id)
    assert moved > 0
    assert _snapshot(db_session, done) == before
    _check_invariants(db_session, study.id, 2)
    # Each rater's finished items still come before anything new in their queue.
    for rater in (alice, bob):
        rows = [a for a, _ in _assignments(db_session, study.id) if a.rater_id == rater.id]
        done_pos = [a.position for a in rows if a.status == "done"]
        open_pos = [a.position for a in rows if a.status != "done"]
        assert max(done_pos) < min(open_pos)


def test_reassign_hands_over_unfinished_work(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=10, raters=("alice", "bob", "carol"))
    alice, bob, carol = lab.raters
    study = studies.create_study(
        db_session,
        name="handover",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id, carol.id],
        attention_check_rate=0,
    )
    done = _judge_first(db_session, carol.id, 2)
    before = _snapshot(db_session, done)
    open_before = sum(
        1
        for a, _ in _assignments(db_session, study.id)
        if a.rater_id == carol.id and a.status != "done"
    )
    moved, stuck = transfers.reassign_rater_work(db_session, study, carol.id)
    assert (moved, stuck) == (open_before, 0)
    assert _snapshot(db_session, done) == before
    assert carol.id not in lookups.study_rater_ids(db_session, study.id)
    per_comparison: dict[int, list[int]] = defaultdict(list)
    for a, c in _assignments(db_session, study.id):
        per_comparison[c.id].append(a.rater_id)
        if a.rater_id == carol.id:
            assert a.status == "done"
    assert all(len(set(rs)) == len(rs) == 2 for rs in per_comparison.values())


def test_qc_and_export(db_session: Session, tmp_path: Path) -> None:
    lab = build_lab(db_session, tmp_path, prompts=4, steps=(10,))
    alice, bob = lab.raters
    study = studies.create_study(
        db_session,
        name="qc",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[alice.id, bob.id],
        attention_check_rate=0,
        seed=3,
    )
    # Both raters always pick the checkpoint's side: full agreement on "checkpoint".
    for rater in (alice, bob):
        judge_queue(db_session, rater.id, checkpoint_side, rationale="=cmd")
    report = qc.study_qc(db_session, study)
    assert (report.done, report.total, report.pairs) == (8, 8, 4)
    assert report.raw_agreement == 1.0
    assert report.checkpoints[0].win_rate == 1.0
    assert report.checkpoints[0].label == "ppo-lab@10"
    records = exports.judgement_records(db_session, study.id, anonymise=True, key=b"k")
    assert {r["winner"] for r in records} == {"checkpoint"}
    assert {r["rater"] for r in records} == {
        exports.pseudonym(b"k", alice.id),
        exports.pseudonym(b"k", bob.id),
    }
    assert "alice" not in exports.to_jsonl(records)
    named = exports.judgement_records(db_session, study.id, anonymise=False, key=b"k")
    assert {r["rater"] for r in named} == {"alice", "bob"}
    parsed = list(csv.DictReader(io.StringIO(exports.judgements_csv(named))))
    assert len(parsed) == 8 and parsed[0]["checkpoint"] == "ppo-lab@10"
    assert parsed[0]["rationale"] == "'=cmd"  # defused for spreadsheets
    assert json.loads(exports.to_jsonl(named).splitlines()[0])["rationale"] == "=cmd"


def test_attention_pass_rate_per_rater(db_session: Session, tmp_path: Path) -> None:
    # Spare base samples per prompt: a check's texts are then shown nowhere else (its good side
    # and an off-topic decoy each use one). Texts differ from their first word, so no two
    # checks degrade to the same text.
    texts = {
        (who, i): f"{who} {i}: a base sample. Two sentences. Three."
        for who in ("base", "base#2", "base#3", "base#4")
        for i in range(4)
    }
    lab = build_lab(db_session, tmp_path, prompts=4, steps=(10,), base_samples=4, texts=texts)
    careful, careless = lab.raters
    study = studies.create_study(
        db_session,
        name="attn",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[careful.id, careless.id],
        attention_check_rate=1.0,
    )
    for rater, picks_intact in ((careful, True), (careless, False)):
        judge_queue(
            db_session,
            rater.id,
            lambda a, _c, intact=picks_intact: (
                a.checkpoint_side
                if intact
                else ("right" if a.checkpoint_side == "left" else "left")
            ),
        )
    report = {r.name: r for r in qc.study_qc(db_session, study).raters}
    assert report["alice"].attention_total == report["bob"].attention_total >= 2
    assert report["alice"].attention_pass_rate == 1.0
    assert report["bob"].attention_pass_rate == 0.0
    # Verdicts on normal comparisons: always checkpoint vs always reference -> no agreement.
    assert qc.study_qc(db_session, study).raw_agreement == 0.0


def test_judging_works_on_embedded_sqlite(tmp_path: Path) -> None:
    # The default local database is SQLite: naive datetimes and savepoints must work there too.
    from sqlalchemy.orm import sessionmaker

    from judging.data.db import make_engine
    from judging.data.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine, expire_on_commit=False)() as session:
        lab = build_lab(session, tmp_path, prompts=3)
        studies.create_study(
            session,
            name="lite",
            checkpoint_ids=[lab.trained[0].id],
            prompt_set_id=lab.prompt_set_id,
            rater_ids=[r.id for r in lab.raters],
            attention_check_rate=0,
        )
        session.commit()
        rid = lab.raters[0].id
        first = rating.queue_state(session, rid).item
        assert first is not None
        assert rating.record_judgement(
            session,
            rater_id=rid,
            public_id=first.public_id,
            choice="left",
            rationale=None,
            idempotency_key="k1",
        )
        session.commit()
        second = rating.next_assignment(session, rid)
        assert second is not None
        # A key reused on another item is refused and leaves the transaction usable.
        with pytest.raises(ConflictError, match="another item"):
            rating.record_judgement(
                session,
                rater_id=rid,
                public_id=second.public_id,
                choice="left",
                rationale=None,
                idempotency_key="k1",
            )
        session.commit()
        assert rating.undo(session, rater_id=rid, public_id=first.public_id)
        session.commit()
        live = select(func.count()).select_from(Judgement).where(Judgement.withdrawn_at.is_(None))
        assert session.scalar(live) == 0
        assert session.scalar(select(func.count()).select_from(Judgement)) == 1
    engine.dispose()


def test_a_verdict_updates_an_assignment_the_session_already_holds(
    db_session: Session, tmp_path: Path
) -> None:
    """The verdict's status change is a Core UPDATE (no unit of work); a copy of the assignment
    loaded earlier in the same session must not go on saying it is still queued."""
    lab = build_lab(db_session, tmp_path, prompts=3)
    studies.create_study(
        db_session,
        name="held",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    held = db_session.scalars(select(Assignment).order_by(Assignment.id)).first()
    assert held is not None and held.status == "pending" and held.done_at is None
    fresh = rating.record_judgement(
        db_session,
        rater_id=held.rater_id,
        public_id=held.public_id,
        choice="left",
        rationale=None,
        idempotency_key="held-1",
    )
    assert fresh and held.status == "done" and held.done_at is not None
