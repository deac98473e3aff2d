"""`rlhf study ...`: create blind pairwise studies, resume and list them.

`rlhf study export` is a deprecated alias of `rlhf export judgements`."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, db_session, err_console

app = typer.Typer(help="Human judging studies.", no_args_is_help=True)


def _ids(session: object, names: list[str]) -> list[int]:
    from judging.studies.raters import get_rater_by_name

    return [int(n) if n.isdigit() else get_rater_by_name(session, n).id for n in names]  # type: ignore[arg-type]


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Study name (unique)."),
    checkpoint: list[int] = typer.Option(
        ..., "--checkpoint", "-c", help="Checkpoint id to judge (repeat)."
    ),
    prompt_set: str = typer.Option(..., "--prompt-set", help="Held-out prompt set name or id."),
    rater: list[str] = typer.Option(..., "--rater", "-r", help="Rater name or id (repeat)."),
    reference: int | None = typer.Option(
        None, help="Reference checkpoint id (default: base of the first checkpoint's run)."
    ),
    raters_per_comparison: int = typer.Option(2, min=1, help="Distinct raters per comparison."),
    attention_rate: float = typer.Option(
        0.05, min=0.0, max=1.0, help="Share of extra attention-check items."
    ),
    seed: int | None = typer.Option(
        None, help="Seed for the assignment and order (sides stay random)."
    ),
    base_reuse: int = typer.Option(
        1,
        min=1,
        help="Comparisons that may share one base response (to disjoint raters): fewer base "
        "samples, needs base-reuse x raters-per-comparison raters.",
    ),
    allocation: str = typer.Option(
        "uniform",
        help="uniform: every comparison is judged. adaptive: verdicts go to the checkpoints "
        "still in contention, and the study stops once the leader is within delta of the best "
        "with probability --target.",
    ),
    target: float = typer.Option(
        0.9, help="Adaptive only: the stopping probability, within (0.5, 1)."
    ),
) -> None:
    """Create a study: one comparison per prompt and checkpoint, each given to N raters."""
    from sqlalchemy import select

    from judging.data.models import Comparison, PromptSet
    from judging.errors import NotFoundError
    from judging.studies.pairing import attention_warning
    from judging.studies.service import create_study

    with db_session() as session:
        ps = session.scalar(select(PromptSet).where(PromptSet.name == prompt_set))
        if ps is None and prompt_set.isdigit():
            ps = session.get(PromptSet, int(prompt_set))
        if ps is None:
            raise NotFoundError(f"prompt set {prompt_set!r} does not exist")
        study = create_study(
            session,
            name=name,
            checkpoint_ids=checkpoint,
            prompt_set_id=ps.id,
            rater_ids=_ids(session, rater),
            reference_checkpoint_id=reference,
            raters_per_comparison=raters_per_comparison,
            attention_check_rate=attention_rate,
            seed=seed,
            base_reuse=base_reuse,
            allocation=allocation,
            allocation_target=target,
        )
        count = len(
            session.scalars(select(Comparison.id).where(Comparison.study_id == study.id)).all()
        )
        console.print(
            f"study {study.id} {study.name!r}: {count} comparisons x {raters_per_comparison} raters"
        )
        if study.allocation == "adaptive":
            console.print(
                f"adaptive allocation: stops at P(leader within delta of the best) >= {target}"
            )
        warning = attention_warning(session, study)
        if warning:
            console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)


@app.command("resume")
def resume(
    study_id: int = typer.Argument(..., help="Study id."),
    target: float | None = typer.Option(
        None, help="New stopping probability (default: halve the remaining doubt)."
    ),
) -> None:
    """Serve a decided adaptive study again, for more precision."""
    from judging.studies.allocation import resume as resume_study
    from judging.studies.lookups import get_study

    with db_session() as session:
        reached = resume_study(session, get_study(session, study_id), target)
        console.print(f"study {study_id}: serving again until P reaches {reached:.3f}")


@app.command("list")
def list_() -> None:
    """List studies with their progress."""
    from judging.studies.allocation import describe
    from judging.studies.lookups import list_studies
    from judging.studies.qc import study_qc

    with db_session() as session:
        for s in list_studies(session):
            report = study_qc(session, s, n_boot=0)  # progress only: no intervals
            view = describe(session, s)
            console.print(
                f"{s.id}\t{s.name}\t{s.status}\t{report.done}/{report.total} judged"
                + (f"\t{view.line}" if view else ""),
                highlight=False,
                soft_wrap=True,  # one line per study, whatever the terminal's width
            )


@app.command("export", hidden=True, deprecated=True)
def export(
    study_id: int = typer.Argument(..., help="Study id."),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: stdout)."
    ),
    anonymise: bool = typer.Option(
        True, "--anonymise/--with-names", help="Stable pseudonyms instead of rater names."
    ),
) -> None:
    """Deprecated alias of `rlhf export judgements --study ID --include-excluded`."""
    from cli.export import judgements

    err_console.print(
        "`rlhf study export` is deprecated: use `rlhf export judgements --study ID`",
        highlight=False,
        soft_wrap=True,
    )
    # As this command always did: every live verdict, excluded raters' ones marked.
    judgements(study_id, output, fmt, anonymise, include_excluded=True)
