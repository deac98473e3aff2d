"""`rlhf ladder build`: n_max samples of the base per prompt, each scored by the proxy RM.

The file format is `judging.evaluation.ladder`'s (header line, then one line per prompt and
sample). Invariants of the build:

- Sample k of prompt p is drawn with the seed `sample_seed(seed, p, k)` and the n_max samples of
  one prompt are generated together (the same prompt n_max times: no padding), in the same
  batches whatever was built before; so a resumed build writes the very bytes an uninterrupted
  one does. The header records every setting a sample depends on (batch size and device
  included: floating-point results differ between them), and a resume with other settings is
  refused rather than mixing two distributions in one file.
- Prompts are done in file order and the file only ever holds whole prompts: after each chunk
  the whole file is written to `<out>.partial` (gzip with mtime 0 and no name, so the bytes are
  reproducible), fsynced and renamed over `<out>`. An interrupt (Ctrl-C, a kill) leaves the
  previous complete file; the next run skips the prompts it holds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judging.errors import ConfigError
from judging.evaluation.ladder import FORMAT_VERSION, check_header, iter_rows
from training.common import read_jsonl, shard_files, shard_path
from training.generation.base import ModelRef, SamplingParams
from training.onpolicy import sample_seed

Progress = Callable[[int, int, int], None]
"""on_prompt(prompts done, prompts in all, tokens generated for the last one)."""


@dataclass(frozen=True)
class LadderSpec:
    """What `rlhf ladder build` samples and how; every field but `out`, `shard` and `chunk` goes
    into the file's header (relative paths as given, so a file built elsewhere imports here)."""

    prompts: str
    """JSONL with `id` and `prompt` (the held-out set the ladder is imported against)."""
    reward_model: str
    """The proxy: a reward-model folder or a shipped adapter (merged into the data dir once)."""
    out: str
    base_model: str = "var/models/SmolLM2-135M-Instruct"
    n_max: int = 16
    max_new_tokens: int = 128
    temperature: float = 0.7
    """The evaluation's temperature: BoN(1) is then what `rlhf evaluate` would sample."""
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 16
    """Samples per forward pass (at most n_max are ever batched: one prompt at a time)."""
    dtype: str = "float32"
    device: str = "cpu"
    backend: str = "transformers"
    """transformers (the seeded inverse-CDF sampler) or vllm (vLLM's own seeded sampler)."""
    shard: tuple[int, int] = (0, 1)
    """(i, n): build only prompts i, i+n, ... into `<out>.shard<i>of<n>` (one process per core);
    a later unsharded build merges the shards into `out` in prompt order, with the very bytes
    of an unsharded build (each prompt's samples depend on nothing else)."""
    chunk: int = 1
    """Prompts between two rewrites of the file (what an interrupt can lose), sampled in one
    generate call: vLLM batches them all at once, transformers still one prompt per batch."""


def header_for(spec: LadderSpec, prompts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The header line: the format, the prompts (hash of ids and texts) and every setting."""
    digest = hashlib.sha256()
    for row in prompts:
        digest.update(f"{row['id']}\x00{row['prompt']}\x00".encode())
    return {
        "ladder": FORMAT_VERSION,
        "n_max": spec.n_max,
        "base_model": spec.base_model,
        "reward_model": spec.reward_model,
        "reward_dtype": "float32",
        "prompts": {"file": spec.prompts, "count": len(prompts), "sha256": digest.hexdigest()},
        "sampling": {
            "temperature": spec.temperature,
            "top_p": spec.top_p,
            "max_new_tokens": spec.max_new_tokens,
            "seed": spec.seed,
            "dtype": spec.dtype,
            "batch_size": min(spec.batch_size, spec.n_max),
            "device": spec.device,
            "sampler": "inverse-cdf" if spec.backend == "transformers" else spec.backend,
        },
    }


def _dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def read_built(out: Path, header: dict[str, Any]) -> tuple[list[str], set[str]]:
    """Sample lines already built and the prompts they finish; a file built with other settings
    (or over other prompts) is refused, naming what differs."""
    if not out.is_file():
        return [], set()
    rows = iter_rows(out)
    first = next(rows, None)
    if first is None:
        return [], set()
    check_header(str(out), *first)
    if first[1] != header:
        keys = sorted(k for k in set(header) | set(first[1]) if header.get(k) != first[1].get(k))
        raise ConfigError(
            f"{out} was built with other settings ({', '.join(keys)} differ); resume with the "
            "same flags or write to another --out"
        )
    lines = open_lines(out)[1:]
    counts: dict[str, int] = {}
    for _, row in rows:
        counts[str(row.get("prompt_id"))] = counts.get(str(row.get("prompt_id")), 0) + 1
    # The file only ever holds whole prompts (it is rewritten per chunk, never appended to).
    return lines, {pid for pid, n in counts.items() if n == header["n_max"]}


def merge_shards(out: Path, header: dict[str, Any], order: Sequence[str]) -> None:
    """Fold complete prompts of `<out>.shard*` into `out` (same header), in prompt order."""
    shards = shard_files(out)
    if not shards:
        return
    by_prompt: dict[str, list[str]] = {}
    for path in [out, *shards]:
        lines, done = read_built(path, header)
        for line in lines:
            pid = str(json.loads(line)["prompt_id"])
            if pid in done:
                by_prompt.setdefault(pid, [])
                if len(by_prompt[pid]) < header["n_max"]:
                    by_prompt[pid].append(line)
    merged = [line for pid in order for line in by_prompt.get(pid, [])]
    write_atomic(out, [_dumps(header), *merged])
    for path in shards:
        path.unlink()


def open_lines(out: Path) -> list[str]:
    from judging.evaluation.ladder import open_text

    return [line for line in open_text(out).splitlines() if line.strip()]


def write_atomic(out: Path, lines: Sequence[str]) -> None:
    """The whole file under `<out>.partial`, fsynced, then renamed over `out` (gzip when the
    name ends in .gz, with mtime 0 and no embedded name: equal lines give equal bytes)."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if out.name.endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
            gz.write(data)
        data = buffer.getvalue()
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


@dataclass
class BuildResult:
    out: Path
    prompts: int
    added: int
    tokens: int
    seconds: float


def _reward_folder(path: str, base_model: str, data_dir: Path | None) -> str:
    """A merged reward-model folder: the path itself, or a shipped adapter merged once."""
    folder = Path(path)
    if (folder / "adapter_config.json").is_file():
        from training.shipped_rm import materialise

        root = data_dir or folder.parent
        folder = materialise(folder, base_model, root / "reward_models" / (folder.name + "-merged"))
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{path} is neither a reward-model folder nor a shipped adapter")
    return str(folder)


def build_ladder(
    spec: LadderSpec,
    *,
    data_dir: Path | None = None,
    generator: Any = None,
    scorer: Any = None,
    on_prompt: Progress | None = None,
) -> BuildResult:
    """Sample and score every prompt the file lacks; returns what was added."""
    if spec.n_max < 1 or spec.batch_size < 1 or spec.chunk < 1:
        raise ConfigError("--n-max, --batch-size and the chunk must be at least 1")
    started = time.monotonic()
    out = Path(spec.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".partial").unlink(missing_ok=True)  # a killed writer's leftover
    prompts = read_jsonl(spec.prompts, ("id", "prompt"))
    ids = [str(r["id"]) for r in prompts]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{spec.prompts} has duplicate prompt ids")
    header = header_for(spec, prompts)
    index, count = spec.shard
    if count == 1:
        merge_shards(out, header, ids)
    elif not 0 <= index < count:
        raise ConfigError(f"shard {index} of {count} does not exist")
    lines, done = read_built(out, header)
    if count > 1:  # a shard is a ladder file of its own over every n-th prompt
        out = shard_path(out, index, count)
        lines, in_shard = read_built(out, header)
        done |= in_shard
    pending = [r for i, r in enumerate(prompts) if str(r["id"]) not in done and i % count == index]
    if not pending:
        if not out.is_file():
            write_atomic(out, [_dumps(header)])
        return BuildResult(out, len(prompts), 0, 0, time.monotonic() - started)
    import torch

    from training.evaluation.scoring import PromptCache, RewardScorer
    from training.generation.base import chat_prompt_ids
    from training.generation.hf import TransformersGenerator, load_causal_lm

    ref = ModelRef(base_path=spec.base_model)
    if generator is None and spec.backend == "vllm":
        from training.generation.vllm_offline import offline_generator

        generator = offline_generator(spec.base_model, spec.dtype)
    elif generator is None:
        model = load_causal_lm(ref, device=spec.device, dtype=getattr(torch, spec.dtype))
        generator = TransformersGenerator(
            ref, device=spec.device, batch_size=min(spec.batch_size, spec.n_max), model=model
        )
    if scorer is None:
        folder = _reward_folder(spec.reward_model, spec.base_model, data_dir)
        # A prompt's n_max samples share its prefix: computed once per prompt, not per sample.
        scorer = RewardScorer(
            folder, device=spec.device, batch_size=spec.batch_size, prompt_cache=PromptCache(8)
        )
        scorer.check_tokenizer(generator.tokenizer)
    params = SamplingParams(
        temperature=spec.temperature, top_p=spec.top_p, max_new_tokens=spec.max_new_tokens
    )
    added = tokens = 0
    for start in range(0, len(pending), spec.chunk):
        chunk = pending[start : start + spec.chunk]
        seeds = [
            [sample_seed(spec.seed, str(row["id"]), k) for k in range(spec.n_max)] for row in chunk
        ]
        flat = generator.generate(
            [row["prompt"] for row in chunk for _ in range(spec.n_max)],
            params,
            [s for per_prompt in seeds for s in per_prompt],
        )
        for i, row in enumerate(chunk):
            results = flat[i * spec.n_max : (i + 1) * spec.n_max]
            prompt_ids = chat_prompt_ids(generator.tokenizer, row["prompt"])
            scores = scorer.score([prompt_ids] * spec.n_max, [r.token_ids for r in results])
            for k, (result, score) in enumerate(zip(results, scores, strict=True)):
                lines.append(
                    _dumps(
                        {
                            "prompt_id": str(row["id"]),
                            "prompt": row["prompt"],
                            "sample": k,
                            "seed": seeds[i][k],
                            "text": result.text,
                            "tokens": [int(t) for t in result.token_ids],
                            "finish_reason": result.finish_reason,
                            "proxy_score": round(float(score), 6),
                        }
                    )
                )
            new = sum(len(r.token_ids) for r in results)
            tokens += new
            added += 1
            if on_prompt is not None:
                # Called before the chunk is on disk: an exception here (a test's interrupt)
                # loses the chunk, never the file.
                on_prompt(len(done) + added, len(prompts), new)
        write_atomic(out, [_dumps(header), *lines])
    return BuildResult(out, len(prompts), added, tokens, time.monotonic() - started)
