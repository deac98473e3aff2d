"""On-policy pairs: resumable, deterministic sampling and gold labelling with noise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judging.gold import GoldScore, LabellerSpec
from tests.training.conftest import PROMPTS


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    rows = [{"id": f"t{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def test_sampling_resumes_and_is_deterministic(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from training.onpolicy import SampleSpec, generate_samples

    spec = SampleSpec(
        prompts=str(_prompts(tmp_path)),
        base_model=str(tiny_models["policy"]),
        n_prompts=4,
        max_new_tokens=6,
        batch_size=2,
    )
    out = tmp_path / "samples.jsonl"
    assert generate_samples(spec, out) == 4
    assert generate_samples(spec, out) == 0  # nothing left to do
    with out.open("a") as handle:
        handle.write('{"prompt_id": "torn')  # a write killed half-way
    longer = SampleSpec(**{**spec.__dict__, "n_prompts": 6})
    assert generate_samples(longer, out) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(len(r["responses"]) == 2 for r in rows)

    fresh = tmp_path / "fresh.jsonl"
    generate_samples(longer, fresh)
    assert sorted(fresh.read_text().splitlines()) == sorted(out.read_text().splitlines())

    # Shards (one process per core) merge into what one unsharded run writes, in prompt order.
    sharded = tmp_path / "sharded.jsonl"
    assert generate_samples(longer, sharded, shard=(1, 2)) == 3
    assert generate_samples(longer, sharded, shard=(0, 2)) == 3
    assert not sharded.exists() and len(list(tmp_path.glob("sharded.jsonl.shard*"))) == 2
    assert generate_samples(longer, sharded) == 0  # merged: nothing left to sample
    assert sharded.read_text() == fresh.read_text()
    assert not list(tmp_path.glob("sharded.jsonl.shard*"))

    # The evaluation RM's window starts after the proxy's prompts: no prompt is shared.
    window = SampleSpec(**{**spec.__dict__, "first": 6, "n_prompts": 10})
    later = tmp_path / "window.jsonl"
    assert generate_samples(window, later) == len(PROMPTS) - 6
    ids = {json.loads(line)["prompt_id"] for line in later.read_text().splitlines()}
    assert ids and not ids & {r["prompt_id"] for r in rows}


class _FakeScorer:
    """Gold = length of the text in characters / 100 (enough to check the labelling)."""

    def scores(self, prompts: list[str], texts: list[str]) -> list[GoldScore]:
        return [GoldScore(len(t) / 100, 0, 0, 0, 0, 0) for t in texts]


def _samples(path: Path, n: int) -> Path:
    rows = [
        {
            "prompt_id": f"p{i}",
            "prompt": f"Question {i}?",
            "responses": [
                {"text": "short." * (1 + i % 3), "n_tokens": 3, "finish_reason": "stop"},
                {
                    "text": "a longer answer." * (2 + i % 2),
                    "n_tokens": 9,
                    "finish_reason": "length",
                },
            ],
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def test_labels_follow_gold_with_configured_noise(tmp_path: Path) -> None:
    from training.onpolicy import label_pairs

    samples = _samples(tmp_path / "s.jsonl", 400)
    exact = label_pairs(samples, tmp_path / "exact", LabellerSpec(0.0, 0.0), scorer=_FakeScorer())
    assert exact["train_labels_agreeing_with_gold"] == 1.0
    assert 20 < exact["pairs"]["heldout"] < 100  # ~15% of 400
    noisy = label_pairs(samples, tmp_path / "noisy", LabellerSpec(0.25, 0.0), scorer=_FakeScorer())
    assert noisy["train_labels_agreeing_with_gold"] == pytest.approx(0.75, abs=0.06)
    heldout = [
        json.loads(x) for x in (tmp_path / "noisy" / "heldout.jsonl").read_text().splitlines()
    ]
    assert all(r["gold_chosen"] >= r["gold_rejected"] for r in heldout)  # held out = gold labels
    again = label_pairs(samples, tmp_path / "again", LabellerSpec(0.25, 0.0), scorer=_FakeScorer())
    assert (tmp_path / "again" / "train.jsonl").read_text() == (
        tmp_path / "noisy" / "train.jsonl"
    ).read_text()
    assert again == {**noisy, "samples": again["samples"]}
