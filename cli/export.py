"""`rlhf export ...`: the recommendation, judgements, preference pairs, the model card (and the
report, cli/export_report.py). Every subcommand names its study with `--study/-s ID` and writes to
`--output/-o FILE` or stdout; the data come from judging.analysis.exports, as the web downloads'."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, db_session, settings

if TYPE_CHECKING:
    from judging.stats.rule import RecommendationRule

app = typer.Typer(help="Export a study's results.", no_args_is_help=True)

STUDY = typer.Option(..., "--study", "-s", help="Study id.")
OUTPUT = typer.Option(None, "--output", "-o", help="File to write (default: stdout).")


def _rule(
    min_prompts: int, delta: float, max_kl_per_token: float | None, metric: str, n_boot: int
) -> RecommendationRule:
    from judging.stats.rule import RecommendationRule

    if metric not in ("lc", "adjusted"):
        raise typer.BadParameter("must be lc or adjusted", param_hint="--metric")
    try:
        return RecommendationRule(
            min_prompts=min_prompts,
            delta=delta,
            max_kl_per_token=max_kl_per_token,
            metric=metric,  # type: ignore[arg-type]
            n_boot=n_boot,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


MIN_PROMPTS = typer.Option(20, min=0, help="Distinct judged prompts a candidate needs.")
DELTA = typer.Option(0.03, min=0.0, help="Practical margin in win-rate points.")
MAX_KL_PER_TOKEN = typer.Option(
    0.25, min=0.0, help="KL guard in nats per response token (0 turns every KL away)."
)
METRIC = typer.Option("lc", help="Rank by length-controlled (lc) or prompt-adjusted win rate.")
N_BOOT = typer.Option(1000, min=50, help="Joint prompt resamples.")


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
    min_prompts: int = MIN_PROMPTS,
    delta: float = DELTA,
    max_kl_per_token: float = MAX_KL_PER_TOKEN,
    metric: str = METRIC,
    n_boot: int = N_BOOT,
) -> None:
    """The best-checkpoint recommendation as JSON (recomputed first if verdicts changed)."""
    from judging.analysis.exports import export_recommendation

    rule = _rule(min_prompts, delta, max_kl_per_token, metric, n_boot)
    with db_session() as session:
        document = export_recommendation(session, study_id, rule)
    _write(json.dumps(document, indent=2, ensure_ascii=False) + "\n", output, "the recommendation")


@app.command("judgements")
def judgements(
    study_id: int = STUDY,
    output: Path | None = OUTPUT,
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or jsonl."),
    anonymise: bool = typer.Option(
        True, "--anonymise/--with-names", help="Stable pseudonyms instead of rater names."
    ),
    include_excluded: bool = typer.Option(
        False,
        "--include-excluded/--counted-only",
        help="Also the verdicts of raters excluded from the statistics (column `excluded`).",
    ),
) -> None:
    """Judged rows with the prompt and both responses (unblinded), winner resolved."""
    from judging.analysis.exports import judgement_records, judgements_csv, to_jsonl

    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("must be csv or jsonl", param_hint="--format")
    key = settings().secret_key.get_secret_value().encode()
    with db_session() as session:
        records = judgement_records(
            session, study_id, anonymise=anonymise, key=key, include_excluded=include_excluded
        )
    body = judgements_csv(records) if fmt == "csv" else to_jsonl(records)
    _write(body, output, f"{len(records)} judgements")


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
    min_prompts: int = MIN_PROMPTS,
    delta: float = DELTA,
    max_kl_per_token: float = MAX_KL_PER_TOKEN,
    metric: str = METRIC,
    n_boot: int = N_BOOT,
) -> None:
    """Write README.md (YAML metadata + evaluation results) into the recommended checkpoint."""
    from judging.analysis.exports import write_model_card

    rule = _rule(min_prompts, delta, max_kl_per_token, metric, n_boot)
    with db_session() as session:
        path = write_model_card(
            session,
            study_id,
            rule,
            folder=folder,
            overwrite=overwrite,
        )
    console.print(f"wrote the model card to {path}", highlight=False)
