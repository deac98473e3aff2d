"""`rlhf export ...`: the recommendation, judgements, preference pairs and the model card."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, db_session, settings

if TYPE_CHECKING:
    from judging.stats.recommend import RecommendationRule

app = typer.Typer(help="Export a study's results.", no_args_is_help=True)

STUDY = typer.Argument(..., help="Study id.")
OUTPUT = typer.Option(None, "--output", "-o", help="File to write (default: stdout).")


def _rule(min_verdicts: int, max_kl: float | None, metric: str, n_boot: int) -> RecommendationRule:
    from judging.stats.recommend import RecommendationRule

    if metric not in ("lc", "raw"):
        raise typer.BadParameter("must be lc or raw", param_hint="--metric")
    return RecommendationRule(
        min_verdicts=min_verdicts,
        max_kl=max_kl,
        metric=metric,  # type: ignore[arg-type]
        n_boot=n_boot,
    )


MIN_VERDICTS = typer.Option(20, min=1, help="Verdicts a checkpoint needs to be a candidate.")
MAX_KL = typer.Option(None, min=0.0, help="KL budget in nats (default: none).")
METRIC = typer.Option("lc", help="Rank by length-controlled (lc) or raw win rate.")
N_BOOT = typer.Option(1000, min=50, help="Bootstrap resamples.")


def _write(body: str, output: Path | None, what: str) -> None:
    if output is None:
        sys.stdout.write(body)
    else:
        output.write_text(body, encoding="utf-8")
        console.print(f"wrote {what} to {output}", highlight=False)


@app.command("recommendation")
def recommendation(
    study_id: int = STUDY,
    output: Path | None = OUTPUT,
    min_verdicts: int = MIN_VERDICTS,
    max_kl: float | None = MAX_KL,
    metric: str = METRIC,
    n_boot: int = N_BOOT,
) -> None:
    """The best-checkpoint recommendation as JSON (recomputed first if verdicts changed)."""
    from judging.analysis.exports import export_recommendation

    rule = _rule(min_verdicts, max_kl, metric, n_boot)
    with db_session() as session:
        document = export_recommendation(session, study_id, rule)
    _write(json.dumps(document, indent=2, ensure_ascii=False) + "\n", output, "the recommendation")


@app.command("judgements")
def judgements(
    study_id: int = STUDY,
    output: Path | None = OUTPUT,
    anonymise: bool = typer.Option(
        True, "--anonymise/--with-names", help="Stable pseudonyms instead of rater names."
    ),
) -> None:
    """Judgements as CSV with the prompt and both responses (unblinded)."""
    from judging.analysis.exports import judgement_records, judgements_csv

    key = settings().secret_key.get_secret_value().encode()
    with db_session() as session:
        records = judgement_records(session, study_id, anonymise=anonymise, key=key)
    _write(judgements_csv(records), output, f"{len(records)} judgements")


@app.command("preferences")
def preferences(
    study_id: int = STUDY,
    output: Path | None = OUTPUT,
    conversational: bool = typer.Option(
        False, "--conversational/--standard", help="Chat turns instead of plain strings."
    ),
) -> None:
    """Preference pairs as JSONL (TRL prompt/chosen/rejected), ties and both-bad left out."""
    from judging.analysis.exports import preference_records, to_jsonl

    key = settings().secret_key.get_secret_value().encode()
    with db_session() as session:
        records = preference_records(session, study_id, key=key, conversational=conversational)
    _write(to_jsonl(records), output, f"{len(records)} preference pairs")


@app.command("model-card")
def model_card(
    study_id: int = STUDY,
    folder: Path | None = typer.Option(
        None, help="Write here instead of the recommended checkpoint's folder."
    ),
    overwrite: bool = typer.Option(False, help="Replace a README.md rlhf-lab did not write."),
    min_verdicts: int = MIN_VERDICTS,
    max_kl: float | None = MAX_KL,
    metric: str = METRIC,
    n_boot: int = N_BOOT,
) -> None:
    """Write README.md (YAML metadata + evaluation results) into the recommended checkpoint."""
    from judging.analysis.exports import write_model_card

    rule = _rule(min_verdicts, max_kl, metric, n_boot)
    with db_session() as session:
        path = write_model_card(
            session,
            study_id,
            rule,
            folder=folder,
            overwrite=overwrite,
        )
    console.print(f"wrote the model card to {path}", highlight=False)
