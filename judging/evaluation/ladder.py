"""Best-of-n ladders: the file format, its validation, and registering BoN(n) as checkpoints.

A ladder file (`rlhf ladder build`, JSONL, gzip when the name ends in .gz) holds n_max sampled
responses of the base to every prompt of a set, each scored by a proxy reward model:

    line 1      {"ladder": 1, "n_max": 16, "base_model": ..., "reward_model": ...,
                 "reward_dtype": "float32", "sampling": {...}, "prompts": {...}}
    line 2..    {"prompt_id", "prompt", "sample": k, "seed", "text", "tokens": [...],
                 "finish_reason", "proxy_score"}

The policy BoN(n) answers a prompt with the sample of highest proxy score among samples 0..n-1
(ties: the lowest index), so BoN(1) is the base and the ladder's policies are nested. Its KL from
the base is taken as log n - (n-1)/n (Stiennon et al. 2020): an upper bound, tight when every
response has a small probability, as sampled paragraphs do (Beirami et al. 2024). It is stored
where an evaluated checkpoint keeps its held-out KL (every generation's `kl_k1`/`kl_k3`, so the
summary's KL is exactly it) and as the training metric `objective/kl` at step n. The chosen
responses go through `judging.evaluation.imports.attach_responses`, the path of `rlhf import
generations`; from there the statistics are the product's own (summary, growth vs the base,
flags, `rlhf rescore`, studies and the recommendation), with no best-of-n case anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from judging.data.models import FINISH_REASONS, Prompt, TrainingRun
from judging.data.prompts import jsonl_rows, text_hash
from judging.data.registry import (
    ensure_base_checkpoint,
    finish_run,
    record_metrics,
    register_checkpoint,
    start_run,
)
from judging.errors import InputFileError, NotFoundError
from judging.evaluation.config import EvalConfig
from judging.evaluation.imports import attach_responses
from judging.evaluation.results import NewGeneration, Scorers, job_prompts

FORMAT_VERSION = 1
ALGORITHM = "best-of-n"
SAMPLE_FINISH_REASONS = (*FINISH_REASONS, "pad")
"""As the generator reports them: "pad" = stopped on a sampled pad id (stored as "stop")."""


def bon_kl(n: int) -> float:
    """Analytic KL(BoN(n) || base) in nats: log n - (n-1)/n (0 for n = 1)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return math.log(n) - (n - 1) / n


def ladder_ns(n_max: int) -> list[int]:
    """The rungs: 1, 2, 4, ... below n_max, then n_max itself (a power of two or not)."""
    if n_max < 1:
        raise ValueError("n_max must be at least 1")
    out = []
    n = 1
    while n < n_max:
        out.append(n)
        n *= 2
    return [*out, n_max]


def best_of(scores: Sequence[float], n: int) -> int:
    """Index of the highest score among the first n (the lowest index on a tie)."""
    if not 1 <= n <= len(scores):
        raise ValueError(f"n={n} needs 1..{len(scores)} samples")
    return max(range(n), key=lambda k: (scores[k], -k))


@dataclass(frozen=True)
class Sample:
    line: int
    index: int
    seed: int
    """The seed the sample was drawn with (`training.onpolicy.sample_seed`)."""
    text: str
    n_tokens: int
    finish_reason: str
    proxy_score: float


@dataclass(frozen=True)
class Ladder:
    path: Path
    header: dict[str, Any]
    n_max: int
    samples: dict[int, list[Sample]]
    """Prompt (database id) -> its n_max samples in sample-index order."""
    sha256: str


def open_text(path: Path) -> str:
    """The file's text, gunzipped when it is gzip (by its magic bytes, not its name)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputFileError(str(path), None, f"not a complete gzip file ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(str(path), None, f"not UTF-8 text ({exc.reason})") from None


def iter_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every line, header included (line 1)."""
    yield from jsonl_rows(str(path), open_text(path))


def check_header(name: str, number: int, row: dict[str, Any]) -> int:
    """n_max of a valid header line; an InputFileError naming the line otherwise."""
    if row.get("ladder") != FORMAT_VERSION:
        raise InputFileError(
            name, number, f"first line must be a ladder header (ladder: {FORMAT_VERSION})"
        )
    n_max = row.get("n_max")
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise InputFileError(name, number, "'n_max' must be a positive integer")
    for key in ("base_model", "reward_model"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise InputFileError(name, number, f"header needs {key!r} (a path)")
    return n_max


def _sample(name: str, number: int, row: dict[str, Any], n_max: int) -> Sample:
    index = row.get("sample")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_max:
        raise InputFileError(name, number, f"'sample' must be an integer in 0..{n_max - 1}")
    seed = row.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputFileError(name, number, "'seed' must be a non-negative integer")
    text = row.get("text")
    if not isinstance(text, str):
        raise InputFileError(name, number, "'text' must be a string")
    tokens = row.get("tokens")
    if not isinstance(tokens, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in tokens
    ):
        raise InputFileError(name, number, "'tokens' must be a list of token ids")
    finish = row.get("finish_reason")
    if finish not in SAMPLE_FINISH_REASONS:
        raise InputFileError(
            name, number, f"'finish_reason' must be one of {', '.join(SAMPLE_FINISH_REASONS)}"
        )
    score = row.get("proxy_score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InputFileError(name, number, "'proxy_score' must be a finite number")
    return Sample(number, index, seed, text, len(tokens), str(finish), float(score))


def parse_ladder(path: Path, prompts: Sequence[Prompt], set_name: str) -> Ladder:
    """Every line checked against the prompt set before anything is written.

    Refused, naming the line: a missing or malformed header, a prompt id not in the set, a prompt
    text that differs from the set's, a sample index out of range or seen before for the prompt,
    a bad field. Then every prompt of the set must have all n_max samples (the message names the
    prompt and, if it has any, the last line it has).
    """
    name = str(path)
    if not path.is_file():
        raise InputFileError(name, None, "file does not exist")
    by_id = {p.external_id: p for p in prompts}
    rows = iter_rows(path)
    first = next(rows, None)
    if first is None:
        raise InputFileError(name, None, "empty file (no ladder header)")
    n_max = check_header(name, *first)
    samples: dict[int, dict[int, Sample]] = {}
    for number, row in rows:
        prompt = by_id.get(str(row.get("prompt_id")))
        if prompt is None:
            raise InputFileError(
                name,
                number,
                f"prompt_id {row.get('prompt_id')!r} is not in prompt set {set_name!r}",
            )
        if not isinstance(row.get("prompt"), str) or text_hash(row["prompt"]) != prompt.text_hash:
            raise InputFileError(
                name,
                number,
                f"prompt text of {prompt.external_id!r} differs from prompt set {set_name!r}",
            )
        item = _sample(name, number, row, n_max)
        seen = samples.setdefault(prompt.id, {})
        if item.index in seen:
            raise InputFileError(
                name,
                number,
                f"duplicate sample {item.index} of prompt {prompt.external_id!r} "
                f"(first on line {seen[item.index].line})",
            )
        seen[item.index] = item
    for prompt in prompts:
        have = samples.get(prompt.id, {})
        if len(have) < n_max:
            where = max((s.line for s in have.values()), default=None)
            missing = "no samples" if not have else f"{len(have)} of {n_max} samples"
            raise InputFileError(
                name,
                where,
                f"prompt {prompt.external_id!r} (position {prompt.position} of {set_name!r}) has "
                f"{missing}; is the build finished?",
            )
    ordered = {pid: [have[k] for k in range(n_max)] for pid, have in samples.items()}
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return Ladder(path, first[1], n_max, ordered, sha)


def _resolve(path: str, root: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or root is None else root / p


SEED_MASK = 0x7FFF_FFFF
"""A stored seed fits the generations' 32-bit signed column; sample seeds are 32-bit unsigned."""


def stored_seed(sample: Sample) -> int:
    """The generation's seed: the sample's own, so that blind judging (which never pairs a
    response with a base sample on a seed it used) pairs a rung with another ladder's samples,
    e.g. a reference built with another seed, and refuses the ladder's own base sample 0."""
    return sample.seed & SEED_MASK


def _generation(prompt: Prompt, sample: Sample, n: int, kl: float) -> NewGeneration:
    ended_on_pad = sample.finish_reason == "pad"
    return NewGeneration(
        prompt.id,
        stored_seed(sample),
        sample.text,
        sample.n_tokens,
        "stop" if ended_on_pad else sample.finish_reason,
        reward=sample.proxy_score,
        # Sequence-level KL, as kl_k1/kl_k3 are: the summary's mean is then exactly bon_kl(n).
        kl_k1=kl,
        kl_k3=kl,
        extra={"best_of_n": {"n": n, "sample": sample.index}}
        | ({"ended_on_pad": True} if ended_on_pad else {}),
    )


def import_ladder(
    session: Session,
    *,
    path: Path,
    run_name: str,
    prompt_set_id: int,
    set_name: str,
    config: EvalConfig,
    base_model: str | None = None,
    root: Path | None = None,
) -> TrainingRun:
    """Validate the whole file, then register the run, its base and BoN(n) for every rung.

    Flushes, never commits: the caller's one transaction holds all of it, so an error (a bad
    line, a run of that name) leaves the database as it was. Relative model paths of the header
    are taken from `root` (the project root).
    """
    prompts = job_prompts(session, prompt_set_id)
    if not prompts:
        raise NotFoundError(f"prompt set {set_name!r} has no prompts")
    ladder = parse_ladder(path, prompts, set_name)
    header = ladder.header
    base = _resolve(base_model or header["base_model"], root)
    if not (base / "config.json").is_file():
        raise NotFoundError(
            f"base model folder {base} does not exist here (give it with --base-model)"
        )
    # The summary records the sampling settings it describes (max_new_tokens, KL temperature):
    # the ladder's, not the eval config's defaults.
    given = header.get("sampling") or {}
    keys = ("temperature", "top_p", "max_new_tokens")
    config = config.model_copy(
        update={
            "sampling": config.sampling.model_copy(
                update={k: given[k] for k in keys if k in given}
            ),
            "reward_dtype": str(header.get("reward_dtype") or "float32"),
        }
    )
    reward_model = str(_resolve(header["reward_model"], root))
    reward_dtype = config.reward_dtype
    run = start_run(
        session,
        name=run_name,
        algorithm=ALGORITHM,
        base_model=str(base),
        reward_model=reward_model,
        config={
            "best_of_n": {
                "ladder_file": str(path),
                "sha256": ladder.sha256,
                "n_max": ladder.n_max,
                "rungs": ladder_ns(ladder.n_max),
                "prompt_set": set_name,
            },
            "header": header,
        },
        output_dir=str(path.parent),
    )
    # One sampling settings key for the base and every rung: they share the samples, so growth
    # vs the base is computed as for any run. n is the checkpoint's, not the sampling's.
    sampling = {**(header.get("sampling") or {}), "sampler": "best-of-n ladder"}
    scorers = Scorers(reward_model, reward_dtype, None, None)
    source = f"{path} (sha256 {ladder.sha256[:12]})"
    rungs: list[tuple[Any, int]] = [(ensure_base_checkpoint(session, run), 1)]
    for n in ladder_ns(ladder.n_max):
        kl = bon_kl(n)
        chosen = [
            ladder.samples[p.id][best_of([s.proxy_score for s in ladder.samples[p.id]], n)]
            for p in prompts
        ]
        metrics = {
            "objective/kl": kl,
            "best_of_n/n": float(n),
            "best_of_n/kl_analytic": kl,
            "best_of_n/proxy_mean": sum(s.proxy_score for s in chosen) / len(chosen),
        }
        checkpoint = register_checkpoint(
            session,
            run_id=run.id,
            step=n,
            path=base,
            metrics=metrics,
            # The policy is base + proxy + n: its identity is the ladder file and n (hashing the
            # base folder's weights for every rung would say nothing more).
            checksum=hashlib.sha256(f"{ladder.sha256}:best-of-{n}".encode()).hexdigest(),
        )
        record_metrics(session, run_id=run.id, step=n, metrics=metrics)
        rungs.append((checkpoint, n))
    for checkpoint, n in rungs:
        kl = bon_kl(n)
        items = []
        for prompt in prompts:
            samples = ladder.samples[prompt.id]
            pick = samples[best_of([s.proxy_score for s in samples], n)]
            items.append(_generation(prompt, pick, n, kl))
        attach_responses(
            session,
            checkpoint_id=checkpoint.id,
            prompt_set_id=prompt_set_id,
            prompts=prompts,
            items=items,
            backend=ALGORITHM,
            model_ref=f"{source} best-of-{n}",
            sampling_params=sampling,
            config=config,
            scorers=scorers,
            job_config={"reward_model": reward_model, "reward_dtype": reward_dtype},
        )
    finish_run(session, run)
    return run
