"""Exports of a study: the recommendation (JSON), judgements (CSV or JSONL), preference pairs
(JSONL in TRL's prompt/chosen/rejected format) and a Hugging Face model card for the recommended
checkpoint. The one exporter: `rlhf export ...` and the admin pages' downloads both call it.

Each `*_document` / `*_records` function returns plain data from the database, each `*_csv` /
`to_jsonl` / `model_card_markdown` function renders it, and `write_model_card` is the one that
touches the file system.

Exports unblind (checkpoint labels, rater names on request), so only admins get them: the web
downloads sit behind the admin check and raters have no export. Rater identities leave as HMAC
pseudonyms (`pseudonym`) unless names are asked for; spreadsheet cells are guarded against
formula injection (`csv_cell`).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from judging.analysis.recommendation import refresh_recommendation
from judging.data.models import (
    Assignment,
    Comparison,
    Generation,
    Judgement,
    Prompt,
    PromptSet,
    Rater,
    Recommendation,
    Study,
)
from judging.errors import ConflictError, NotFoundError
from judging.stats.agreement import winner
from judging.stats.rule import RecommendationRule
from judging.studies.counting import counted_verdict, excluded_rater, live_verdict
from judging.studies.evidence import CheckpointInfo, checkpoint_infos

MODEL_CARD_MARKER = "<!-- written by rlhf-lab: rlhf export model-card -->"


# ---- shared rendering -----------------------------------------------------------------------


def pseudonym(key: bytes, rater_id: int) -> str:
    """A stable pseudonym: the same rater gets the same one in every export signed by this key."""
    digest = hmac.new(key, f"rater:{rater_id}".encode(), hashlib.sha256).hexdigest()
    return f"rater-{digest[:8]}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """Quote a text cell that a spreadsheet would run as a formula (CSV injection, OWASP)."""
    # A leading = + - @ (or a tab/CR/LF before one) makes spreadsheets run the cell as a formula;
    # a real number such as -0.3 is data and stays as it is.
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_jsonl(records: Sequence[dict[str, Any]]) -> str:
    """One JSON object per line, unicode kept; texts as they are (no spreadsheet quoting)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _study(session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFoundError(f"study {study_id} does not exist")
    return study


# ---- recommendation -------------------------------------------------------------------------


def recommendation_document(session: Session, rec: Recommendation) -> dict[str, Any]:
    """A stored recommendation as one JSON-ready document (choice, explanation, evidence)."""
    info = checkpoint_infos(session, [rec.checkpoint_id])[rec.checkpoint_id]
    return {
        "study_id": rec.study_id,
        "recommendation_id": rec.id,
        "created_at": rec.created_at.isoformat(),
        "method": rec.method,
        "checkpoint": _checkpoint_dict(info),
        "p_within_delta": rec.evidence.get("p_within_delta"),
        "expected_regret": rec.evidence.get("expected_regret"),
        "delta": rec.evidence.get("delta"),
        "explanation": rec.rationale.splitlines(),
        "evidence": rec.evidence,
    }


def _checkpoint_dict(info: CheckpointInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "label": info.label,
        "run": info.run,
        "algorithm": info.algorithm,
        "step": info.step,
        "path": info.path,
        "base_model": info.base_model,
        "reward_model": info.reward_model,
        "kl_coef": info.kl_coef,
    }


def current_recommendation(
    session: Session, study_id: int, rule: RecommendationRule | None = None
) -> Recommendation:
    """The up-to-date stored recommendation (recomputed first if verdicts changed)."""
    _study(session, study_id)
    result = refresh_recommendation(session, study_id, rule)
    if result.stored is None:
        why = result.explanation[-1] if result.explanation else "no verdicts"
        raise ConflictError(f"no recommendation for study {study_id}: {why}")
    return result.stored


def export_recommendation(
    session: Session, study_id: int, rule: RecommendationRule | None = None
) -> dict[str, Any]:
    return recommendation_document(session, current_recommendation(session, study_id, rule))


# ---- judgements -----------------------------------------------------------------------------

JUDGEMENT_FIELDS = (
    "study",
    "comparison_id",
    "kind",
    "prompt_id",
    "prompt",
    "checkpoint",
    "reference",
    "checkpoint_response",
    "reference_response",
    "rater",
    "checkpoint_side",
    "choice",
    "winner",
    "rationale",
    "time_on_item_ms",
    "judged_at",
    "excluded",
)


@dataclass(frozen=True)
class JudgedPair:
    """One verdict with the texts it was given on, unblinded."""

    comparison_id: int
    kind: str
    prompt_external_id: str
    prompt: str
    checkpoint_id: int
    checkpoint_response: str
    reference_response: str
    rater_id: int
    rater_name: str
    side: str
    choice: str
    rationale: str | None
    time_ms: int | None
    judged_at: str
    excluded: bool = False
    """The rater is excluded from the study's statistics (only with `include_excluded`)."""

    @property
    def winner(self) -> str:
        return winner(self.choice, self.side)


def judged_pairs(
    session: Session, study_id: int, *, include_excluded: bool = False
) -> list[JudgedPair]:
    """Every counted judgement of a study (judging.studies.counting: no withdrawn verdict, no
    excluded rater) with prompt and both responses, in one query; with `include_excluded`, also
    the live verdicts of excluded raters, marked `excluded`.

    The reference response of an attention check is the degraded copy the rater saw.
    """
    candidate, reference = aliased(Generation), aliased(Generation)
    query = (
        select(
            Comparison.id, Comparison.kind, Prompt.external_id, Prompt.text,
            Comparison.checkpoint_id, candidate.text, reference.text, Comparison.degraded_text,
            Assignment.rater_id, Rater.name, Assignment.checkpoint_side, Judgement.choice,
            Judgement.rationale, Judgement.time_on_item_ms, Judgement.created_at,
            excluded_rater(),
        )
        .select_from(Judgement)
        .join(Assignment, Assignment.id == Judgement.assignment_id)
        .join(Comparison, Comparison.id == Assignment.comparison_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(Rater, Rater.id == Assignment.rater_id)
        .join(candidate, candidate.id == Comparison.candidate_generation_id)
        .outerjoin(reference, reference.id == Comparison.reference_generation_id)
        .where(
            Comparison.study_id == study_id,
            live_verdict() if include_excluded else counted_verdict(),
        )
        .order_by(Comparison.id, Assignment.rater_id)
    )  # fmt: skip
    return [
        JudgedPair(
            cid, kind, ext, ptext, ckpt, cand, ref if ref is not None else (degraded or ""),
            rid, rname, side, choice, rationale, ms, at.isoformat(), bool(excluded),
        )
        for cid, kind, ext, ptext, ckpt, cand, ref, degraded, rid, rname, side, choice,
        rationale, ms, at, excluded in session.execute(query)
    ]  # fmt: skip


def _labels(session: Session, study: Study, pairs: Sequence[JudgedPair]) -> dict[int, str]:
    ids = {p.checkpoint_id for p in pairs} | {study.reference_checkpoint_id}
    return {i: info.label for i, info in checkpoint_infos(session, list(ids)).items()}


def judgement_records(
    session: Session,
    study_id: int,
    *,
    anonymise: bool = True,
    key: bytes,
    include_excluded: bool = False,
) -> list[dict[str, Any]]:
    """Judged rows (JUDGEMENT_FIELDS): prompt, both responses, checkpoint unblinded, winner
    resolved from the side. The verdicts the statistics count; with `include_excluded` also
    those of raters excluded from them, with `excluded` true (an audit of every live verdict)."""
    study = _study(session, study_id)
    pairs = judged_pairs(session, study_id, include_excluded=include_excluded)
    labels = _labels(session, study, pairs)
    return [
        {
            "study": study.name,
            "comparison_id": p.comparison_id,
            "kind": p.kind,
            "prompt_id": p.prompt_external_id,
            "prompt": p.prompt,
            "checkpoint": labels[p.checkpoint_id],
            "reference": labels[study.reference_checkpoint_id] if p.kind == "normal" else "",
            "checkpoint_response": p.checkpoint_response,
            "reference_response": p.reference_response,
            "rater": pseudonym(key, p.rater_id) if anonymise else p.rater_name,
            "checkpoint_side": p.side,
            "choice": p.choice,
            "winner": p.winner,
            "rationale": p.rationale or "",
            "time_on_item_ms": p.time_ms,
            "judged_at": p.judged_at,
            "excluded": p.excluded,
        }
        for p in pairs
    ]


def judgements_csv(records: Sequence[dict[str, Any]]) -> str:
    """CSV text; every cell that a spreadsheet would run as a formula is quoted."""
    buffer = io.StringIO()
    # CRLF as RFC 4180 says: with "\n" alone the writer leaves a bare CR in a value unquoted, and
    # readers then split that row in two.
    writer = csv.DictWriter(buffer, fieldnames=JUDGEMENT_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in r.items()} for r in records)
    return buffer.getvalue()


# ---- preference pairs -----------------------------------------------------------------------


def preference_records(
    session: Session, study_id: int, *, key: bytes, conversational: bool = False
) -> list[dict[str, Any]]:
    """One pair per decisive verdict, in TRL's preference format, with provenance.

    `prompt`/`chosen`/`rejected` are strings (TRL's standard format, what `rlhf train rm|dpo`
    read) or, with `conversational`, a user turn and assistant turns. Ties, "both bad" and
    attention checks carry no preference and are left out. Two raters who agree give two rows:
    each verdict is one observation, as a reward model's training data counts them.
    """
    study = _study(session, study_id)
    pairs = judged_pairs(session, study_id)
    labels = _labels(session, study, pairs)
    out = []
    for p in pairs:
        if p.kind != "normal" or p.winner not in ("checkpoint", "reference"):
            continue
        won = p.winner == "checkpoint"
        chosen = p.checkpoint_response if won else p.reference_response
        rejected = p.reference_response if won else p.checkpoint_response
        row: dict[str, Any] = (
            {
                "prompt": [{"role": "user", "content": p.prompt}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
            if conversational
            else {"prompt": p.prompt, "chosen": chosen, "rejected": rejected}
        )
        row.update(
            study=study.name,
            study_id=study.id,
            prompt_id=p.prompt_external_id,
            comparison_id=p.comparison_id,
            checkpoint=labels[p.checkpoint_id],
            reference=labels[study.reference_checkpoint_id],
            chosen_from=labels[p.checkpoint_id] if won else labels[study.reference_checkpoint_id],
            rater=pseudonym(key, p.rater_id),
            verdict=p.winner,
            judged_at=p.judged_at,
        )
        out.append(row)
    return out


# ---- model card -----------------------------------------------------------------------------


def _metric(name: str, kind: str, value: float | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"name": name, "type": kind, "value": round(float(value), 4)}


def _score(evidence: dict[str, Any], checkpoint_id: int) -> dict[str, Any]:
    scores = evidence.get("decision", {}).get("scores", [])
    return next((s for s in scores if s.get("checkpoint_id") == checkpoint_id), {})


def _inputs(evidence: dict[str, Any], checkpoint_id: int) -> dict[str, Any]:
    rows = evidence.get("inputs", [])
    return next((i for i in rows if i.get("checkpoint_id") == checkpoint_id), {})


def _estimate(value: Any) -> float | None:
    return float(value["estimate"]) if isinstance(value, dict) and "estimate" in value else None


def model_card_metadata(
    info: CheckpointInfo, rec: Recommendation, prompt_set: str, is_adapter: bool
) -> dict[str, Any]:
    """The YAML front matter: base model, library, tags and a model-index of the results."""
    score, inputs = _score(rec.evidence, info.id), _inputs(rec.evidence, info.id)
    metrics = [
        _metric("Human win rate vs base, length-controlled", "win_rate",
                _estimate(score.get("lc_win_rate"))),
        _metric("Human win rate vs base", "win_rate", _estimate(score.get("win_rate"))),
        _metric("Held-out reward (training RM)", "reward", _estimate(inputs.get("reward"))),
        _metric("Held-out reward (evaluation RM)", "reward", _estimate(inputs.get("eval_reward"))),
        _metric("KL from base (nats/response)", "kl", _estimate(inputs.get("kl"))),
        _metric("Length growth vs base", "length_ratio", inputs.get("length_growth")),
    ]  # fmt: skip
    return {
        "base_model": info.base_model,
        "library_name": "peft" if is_adapter else "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["rlhf", info.algorithm, "trl", "rlhf-lab"],
        "model-index": [
            {
                "name": info.label,
                "results": [
                    {
                        "task": {"type": "text-generation", "name": "Text generation"},
                        "dataset": {"name": prompt_set, "type": prompt_set, "split": "heldout"},
                        "metrics": [m for m in metrics if m is not None],
                    }
                ],
            }
        ],
    }


def _text(text: str) -> str:
    """Markdown prose from data: no raw HTML."""
    return text.replace("<", "&lt;")


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, no raw HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _fmt(value: Any, spec: str = ".3f") -> str:
    number = _estimate(value) if isinstance(value, dict) else value
    return "n/a" if number is None else format(float(number), spec)


def _results_table(rec: Recommendation, labels: dict[int, str]) -> list[str]:
    lines = [
        "| checkpoint | role | LC win rate [95% CI] | raw win rate | P(within delta of best) | "
        "held-out reward | KL | length growth | repetition | flags |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    decision = rec.evidence.get("decision", {})
    roles = {rec.checkpoint_id: "recommended"}
    for key, name in (("highest_reward", "highest reward"), ("last", "last")):
        if decision.get(key) is not None:
            roles[decision[key]] = (roles.get(decision[key], "") + ", " + name).strip(", ")
    for cid, lab in labels.items():
        s, i = _score(rec.evidence, cid), _inputs(rec.evidence, cid)
        lc = s.get("lc_win_rate") or {}
        interval = f"{_fmt(lc)} [{_fmt(lc.get('low'))}, {_fmt(lc.get('high'))}]" if lc else "n/a"
        lines.append(
            f"| {_cell(lab)} | {roles.get(cid, '')} | {interval} | {_fmt(s.get('win_rate'))} | "
            f"{_fmt(s.get('p_within_delta'), '.2f')} | {_fmt(i.get('reward'))} | "
            f"{_fmt(i.get('kl'), '.2f')} | "
            f"{_fmt(i.get('length_growth'), '.2f')} | {_fmt(i.get('repetition'))} | "
            f"{_cell(', '.join(i.get('flags') or []) or 'none')} |"
        )
    return lines


def model_card_markdown(
    info: CheckpointInfo, rec: Recommendation, prompt_set: str, is_adapter: bool
) -> str:
    """README.md: YAML metadata, then the evaluation results and why this checkpoint."""
    meta = yaml.safe_dump(
        model_card_metadata(info, rec, prompt_set, is_adapter), sort_keys=False, allow_unicode=True
    )
    labels = {int(i["checkpoint_id"]): str(i["label"]) for i in rec.evidence.get("inputs", [])}
    study = rec.evidence.get("study", {})
    body = [
        f"# {_text(info.label)}",
        "",
        MODEL_CARD_MARKER,
        "",
        f"The checkpoint at step {info.step} of the {info.algorithm.upper()} run `{info.run}`, "
        f"fine-tuned from `{info.base_model}`"
        + (f" against the reward model `{info.reward_model}`" if info.reward_model else "")
        + (f" with KL coefficient {info.kl_coef:g}" if info.kl_coef is not None else "")
        + ". It was chosen by blind pairwise human judging against the base model, not by "
        "reward-model score.",
        "",
        "## Evaluation results",
        "",
        f"Study `{study.get('name', '')}`: raters compared each checkpoint's response with the "
        f"reference `{study.get('reference', '')}` on the held-out prompt set `{prompt_set}`, "
        'blind to which model wrote which side. Win rates count ties and "both bad" as one '
        "half; intervals are 95% bootstrap intervals resampling whole prompts; the "
        "length-controlled rate is the win rate predicted at equal response lengths.",
        "",
        *_results_table(rec, labels),
        "",
        "## Why this checkpoint",
        "",
        *[f"- {_text(line)}" for line in rec.rationale.splitlines()],
        "",
        f"Recommendation {rec.id} ({rec.method}), computed {rec.created_at.isoformat()}.",
        "",
    ]
    return f"---\n{meta}---\n\n" + "\n".join(body)


def _is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() or (
        path / "adapter_model.safetensors"
    ).is_file()


def write_model_card(
    session: Session,
    study_id: int,
    rule: RecommendationRule | None = None,
    *,
    folder: Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write README.md into the recommended checkpoint's folder (or `folder`); returns its path.

    An existing README.md that this tool did not write is kept unless `overwrite` is set.
    """
    rec = current_recommendation(session, study_id, rule)
    info = checkpoint_infos(session, [rec.checkpoint_id])[rec.checkpoint_id]
    target = Path(folder or info.path)
    if not target.is_dir():
        raise NotFoundError(f"checkpoint folder {target} does not exist")
    readme = target / "README.md"
    if readme.exists() and not overwrite and MODEL_CARD_MARKER not in readme.read_text("utf-8"):
        raise ConflictError(f"{readme} exists and was not written by rlhf-lab; pass overwrite")
    prompt_set = session.scalar(
        select(PromptSet.name).join(Study, Study.prompt_set_id == PromptSet.id).where(
            Study.id == study_id
        )
    )  # fmt: skip
    readme.write_text(
        model_card_markdown(info, rec, prompt_set or "", _is_adapter(target)), encoding="utf-8"
    )
    return readme


__all__ = [
    "JUDGEMENT_FIELDS",
    "MODEL_CARD_MARKER",
    "JudgedPair",
    "csv_cell",
    "current_recommendation",
    "export_recommendation",
    "judged_pairs",
    "judgement_records",
    "judgements_csv",
    "model_card_markdown",
    "model_card_metadata",
    "preference_records",
    "pseudonym",
    "recommendation_document",
    "to_jsonl",
    "write_model_card",
]
