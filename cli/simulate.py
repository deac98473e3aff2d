"""`rlhf simulate raters`: fill a study with simulated raters through the real HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cli.common import console, db_session, settings

if TYPE_CHECKING:
    from judging.studies.simulated import ScoreFn

app = typer.Typer(help="Ground-truth simulation (gold preference).", no_args_is_help=True)


def default_base_url() -> str:
    s = settings()
    return f"http://{s.host}:{s.port}"


@app.command("raters")
def raters(
    study: int = typer.Option(..., "--study", help="Study id."),
    count: int = typer.Option(3, "--raters", min=1, help="Simulated raters (sim-s<study>-NN)."),
    base_url: str = typer.Option(None, "--base-url", help="Running app (default RLHF_HOST:PORT)."),
    temperature: float = typer.Option(
        0.08, min=1e-6, help="Gold units per logit of choice noise (higher: less agreement)."
    ),
    position_bias: float = typer.Option(0.2, help="Logit added to the left response."),
    seed: int = typer.Option(0, help="Seed of the raters' choices."),
    max_items: int | None = typer.Option(None, min=1, help="Stop each rater after this many."),
) -> None:
    """Simulated raters judge every item of their queue, choosing by the gold preference."""
    from judging.gold import RaterSpec

    spec = RaterSpec(temperature=temperature, position_bias=position_bias)
    result = simulate_study(
        study, count, base_url or default_base_url(), spec, seed=seed, max_items=max_items
    )
    console.print(f"study {study}: {result['judged']} verdicts from {count} simulated raters")
    agreement = result["raw_agreement"]
    if agreement is not None:
        console.print(f"raw agreement between raters: {agreement:.1%} ({result['pairs']} items)")


@app.command("gold")
def gold(study: int = typer.Option(..., "--study", help="Study id.")) -> None:
    """Score (again) every response of a study with the gold preference and store the scores:
    the study page then draws the gold curve. `simulate raters` does this by itself."""
    gold_scored_study(study)
    with db_session() as session:
        from judging.analysis.gold_curve import gold_rates

        rates = gold_rates(session, study)
    console.print(f"study {study}: gold win rate of {len(rates)} checkpoints stored")


def gold_scored_study(study_id: int) -> ScoreFn:
    """Score every text the study can show with the gold preference, store the scores of its
    generations (the gold curve), and return the simulated raters' lookup of rendered texts."""
    from judging.analysis.gold_curve import store_gold_scores, study_generations
    from judging.gold import scorer_id
    from judging.studies.simulated import cached_score, study_texts
    from training.gold import GoldScorer

    with db_session() as session:
        pairs = study_texts(session, study_id)
        generations = study_generations(session, study_id)
    scorer = GoldScorer()
    with console.status(f"study {study_id}: gold scores of {len(pairs)} responses"):
        parts = scorer.scores([p for p, _ in pairs], [r for _, r in pairs])
    by_text = dict(zip(pairs, parts, strict=True))
    with db_session() as session:
        store_gold_scores(
            session,
            {gid: by_text[(prompt, text)] for gid, prompt, text in generations},
            scorer_id(scorer.weights),
        )
        session.commit()
    totals = [p.total for p in parts]
    return cached_score(pairs, totals, lambda p, r: scorer.score(p, r).total)


def simulate_study(
    study_id: int,
    count: int,
    base_url: str,
    spec: object,
    *,
    seed: int = 0,
    max_items: int | None = None,
) -> dict[str, object]:
    """Enlist the raters, pre-score the study's texts with the gold scorer, drive the raters."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from judging.gold import RaterSpec
    from judging.studies.lookups import get_study
    from judging.studies.qc import study_qc
    from judging.studies.raters import get_rater_by_name
    from judging.studies.rating import progress as rater_progress
    from judging.studies.simulated import enlist_sim_raters, run_raters

    assert isinstance(spec, RaterSpec)
    with db_session() as session:
        tokens = enlist_sim_raters(session, get_study(session, study_id), count)
        todo = 0
        for name in tokens:
            done, total = rater_progress(session, get_rater_by_name(session, name).id)
            todo += total - done
    score = gold_scored_study(study_id)
    with Progress(TextColumn("simulated raters"), BarColumn(), MofNCompleteColumn()) as bar:
        task = bar.add_task("judging", total=todo)
        run = run_raters(
            base_url,
            tokens,
            score,
            spec,
            seed=seed,
            max_items=max_items,
            on_verdict=lambda _name, _n: bar.advance(task),
        )
    with db_session() as session:
        report = study_qc(session, get_study(session, study_id))
    return {"judged": run.total, "raw_agreement": report.raw_agreement, "pairs": report.pairs}
