"""`rlhf ladder pairs`: the ladder's proxy and evaluation reward models, from sampling to shipping.

1. Sample two SmolLM2 answers per train prompt, one asked to be brief and one detailed
   (`training.onpolicy.BRIEF_DETAILED`), so the two answers of a pair differ in length. The proxy
   takes prompts [0, proxy_prompts) of the seeded shuffle of the train set, the evaluation RM
   the next eval_prompts: the two never share a prompt (checked, and written in stats.json).
2. Label each pair by the gold preference with AlpacaFarm's flip rate and a labeller length bias
   (`training.onpolicy.label_pairs`); the held-out pairs keep the gold verdict itself, so a
   report's accuracy is accuracy against the gold.
3. Train each with `rlhf train rm` (training/configs/rm_ladder_proxy.yaml, rm_ladder_eval.yaml)
   and ship adapter + score head + report + model card to data/reward_models/<run name>/.

Sampling resumes (per-batch append, `training.onpolicy.generate_samples`); labelling and
training are redone from the samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judging.errors import ConfigError
from training.onpolicy import BRIEF_DETAILED, SampleSpec, chosen_prompts

ROLES = ("proxy", "eval")
CONFIGS = {
    "proxy": "training/configs/rm_ladder_proxy.yaml",
    "eval": "training/configs/rm_ladder_eval.yaml",
}


@dataclass(frozen=True)
class PairsSpec:
    """Counts and labeller of the two reward models' pairs (defaults: the shipped ones)."""

    out_dir: str = "data/preferences/ladder"
    prompts: str = "data/prompts/train.jsonl"
    base_model: str = "var/models/SmolLM2-135M-Instruct"
    proxy_prompts: int = 2400
    """~2,040 training pairs and ~360 gold-labelled held-out pairs at heldout_share 0.15."""
    eval_prompts: int = 1000
    max_new_tokens: int = 128
    batch_size: int = 16
    dtype: str = "float32"
    seed: int = 0
    flip: float = 0.25
    """AlpacaFarm's p_label_flip."""
    length_bias: float = 0.4
    """Gold units per 100 words of length advantage (4x the on-policy default). The gold prefers
    the longer answer of a brief/detailed pair only 32% of the time (detailed answers run into
    the 128-token limit and past short prompts' budgets); at 0.4 the labels, before flips,
    choose the longer one ~66% of the time and agree with the gold ~66% (0.3: 57% and 75%;
    0.5: 73% and 58%), so the proxy pays for length yet still tracks the gold."""
    heldout_share: float = 0.15
    backend: str = "transformers"
    """transformers (seeded inverse-CDF sampler, batch_size prompts per batch) or vllm (vLLM's
    seeded sampler, batch_size prompts per call: ~3x faster on CPU)."""


def sample_spec(spec: PairsSpec, role: str) -> SampleSpec:
    first, count = (
        (0, spec.proxy_prompts) if role == "proxy" else (spec.proxy_prompts, spec.eval_prompts)
    )
    return SampleSpec(
        prompts=spec.prompts,
        base_model=spec.base_model,
        n_prompts=count,
        first=first,
        dtype=spec.dtype,
        max_new_tokens=spec.max_new_tokens,
        seed=spec.seed,
        batch_size=spec.batch_size,
        styles=BRIEF_DETAILED,
    )


def samples_path(spec: PairsSpec, role: str) -> Path:
    return Path(spec.out_dir) / role / "samples.jsonl"


def build_pairs(
    spec: PairsSpec,
    *,
    generator: Any = None,
    scorer: Any = None,
    on_batch: Callable[[str, int, int, int], None] | None = None,
    roles: Sequence[str] = ROLES,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, Any]:
    """Sample (resuming) and label the roles' pairs; returns their stats by role. A shard
    (`generate_samples`) only samples: labelling needs every prompt's pair."""
    from judging.gold import LabellerSpec
    from training.onpolicy import generate_samples, label_pairs

    specs = {role: sample_spec(spec, role) for role in ROLES}
    ids = {role: {r["id"] for r in chosen_prompts(s)} for role, s in specs.items()}
    if ids["proxy"] & ids["eval"]:  # cannot happen with disjoint windows; guards a refactor
        raise ConfigError("the proxy's and the evaluation RM's prompts overlap")
    if len(ids["eval"]) < spec.eval_prompts:
        raise ConfigError(
            f"{spec.prompts} has {len(ids['proxy']) + len(ids['eval'])} prompts, fewer than "
            f"{spec.proxy_prompts} + {spec.eval_prompts}"
        )
    if generator is None and spec.backend == "vllm":
        from training.generation.vllm_offline import offline_generator

        generator = offline_generator(spec.base_model, spec.dtype)
    stats: dict[str, Any] = {}
    labeller = LabellerSpec(flip=spec.flip, length_bias=spec.length_bias)
    for role, sample in specs.items():
        if role not in roles:
            continue

        def progress(done: int, total: int, tokens: int, role: str = role) -> None:
            if on_batch is not None:
                on_batch(role, done, total, tokens)

        path = samples_path(spec, role)
        generate_samples(sample, path, generator=generator, on_batch=progress, shard=shard)
        if shard[1] > 1:
            continue
        stats[role] = label_pairs(
            path,
            path.parent,
            labeller,
            seed=spec.seed,
            heldout_share=spec.heldout_share,
            scorer=scorer,
        )
        stats[role]["prompts"] = {"first": sample.first, "count": sample.n_prompts}
        stats[role]["styles"] = list(sample.styles)
        stats[role]["sampler"] = spec.backend
        (path.parent / "stats.json").write_text(json.dumps(stats[role], indent=2) + "\n", "utf-8")
    return stats


def train_and_ship(
    role: str,
    *,
    config: str | Path,
    overrides: Sequence[str],
    database_url: str,
    data_dir: Path,
    ship_to: Path,
    pairs_dir: str | None = None,
) -> Path:
    """`rlhf train rm` on the role's pairs, then ship adapter + report + card to
    `ship_to/<run name>`; returns the shipped folder."""
    from training.config import load_config
    from training.entry import train
    from training.shipped_rm import ship

    extra = []
    if pairs_dir is not None:  # pairs written elsewhere than the config says (tests, other runs)
        extra = [
            f"data.preferences={Path(pairs_dir) / role / 'train.jsonl'}",
            f"data.heldout_preferences={Path(pairs_dir) / role / 'heldout.jsonl'}",
        ]
    cfg = load_config(Path(config), [*extra, *overrides])
    if not cfg.lora.enabled:
        raise ConfigError(f"{config}: a shipped reward model needs lora.enabled: true")
    result = train("rm", cfg, database_url=database_url, data_dir=data_dir, resume=False)
    return ship(Path(result.output_dir), ship_to / cfg.run.name)
