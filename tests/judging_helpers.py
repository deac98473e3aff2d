"""Builders for judging tests: a run with base and trained checkpoints, prompts, texts, raters."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from judging.data import registry
from judging.data.models import Assignment, Checkpoint, Comparison, Generation, Rater
from judging.data.prompts import PromptRecord, store_prompt_set
from judging.studies import rating
from judging.studies.raters import invite_rater


@dataclass
class Lab:
    run_name: str
    base: Checkpoint
    trained: list[Checkpoint]
    prompt_set_id: int
    prompt_ids: list[int]
    raters: list[Rater]
    tokens: dict[str, str]


def build_lab(
    session: Session,
    tmp_path: Path,
    *,
    prompts: int = 6,
    steps: tuple[int, ...] = (10, 20),
    raters: tuple[str, ...] = ("alice", "bob"),
    run_name: str = "ppo-lab",
    texts: dict[tuple[str, int], str] | None = None,
    base_samples: int | None = None,
) -> Lab:
    """`texts[(who, prompt index)]` overrides a response; who is "base" or the step as str.

    Checkpoints answer with seed 0; the base gets `base_samples` (default: one per checkpoint)
    independent samples on seeds 1.. (replicates 1..), as a blind study needs. Base sample r > 1
    reads `texts[("base#r", i)]`, by default the base text with " Take r." appended.
    """
    run = registry.start_run(
        session, name=run_name, algorithm="ppo", base_model="models/base", config={}
    )
    base = registry.ensure_base_checkpoint(session, run)
    trained = []
    for step in steps:
        folder = tmp_path / f"{run_name}-checkpoint-{step}"
        folder.mkdir(exist_ok=True)
        (folder / "adapter_model.safetensors").write_bytes(b"w" * step)
        trained.append(registry.register_checkpoint(session, run_id=run.id, step=step, path=folder))
    records = [
        PromptRecord(f"p{i:03d}", f"Prompt number {i}: explain topic {i} briefly.")
        for i in range(prompts)
    ]
    prompt_set = store_prompt_set(
        session, name=f"{run_name}-heldout", split="heldout", records=records, source=None
    )
    prompt_ids = [p.id for p in prompt_set.prompts]
    texts = texts or {}
    samples = len(steps) if base_samples is None else base_samples
    for n, (who, ckpt) in enumerate([("base", base), *[(str(c.step), c) for c in trained]]):
        for i, pid in enumerate(prompt_ids):
            # A neutral variant letter, never the run or step (the blindness tests look for those).
            letter = "QRSTUVWXYZ"[n % 10]
            default = f"Variant {letter} answers prompt {i}. It has two sentences. And a third."
            text = texts.get((who, i), default)
            replicates = range(1, samples + 1) if who == "base" else range(1)
            for r in replicates:
                take = text if r <= 1 else texts.get((f"base#{r}", i), f"{text} Take {r}.")
                session.add(
                    Generation(
                        checkpoint_id=ckpt.id,
                        prompt_id=pid,
                        text=take,
                        token_count=12,
                        finish_reason="stop",
                        backend="import",
                        seed=r,
                        replicate=r,
                    )
                )
    tokens, people = {}, []
    for name in raters:
        rater, token = invite_rater(
            session, name=name, role="admin" if name == "admin" else "rater"
        )
        people.append(rater)
        tokens[name] = token
    session.flush()
    return Lab(run_name, base, trained, prompt_set.id, prompt_ids, people, tokens)


def login(client: object, token: str) -> object:
    """Sign in the way the invite page does: POST the token (it never travels in a URL)."""
    response = client.post("/invite", data={"token": token}, follow_redirects=False)  # type: ignore[attr-defined]
    assert response.status_code == 303, response.text[:300]
    return response


def form_value(html: str, name: str) -> str:
    """The value of the form field `name` on a page (the CSRF token, the submission key)."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} in page"
    return match.group(1)


def item_id(html: str) -> str:
    """The public id of the item the rater page shows, read from its judge form's action."""
    match = re.search(r'class="judge-form" method="post" action="/rate/([A-Za-z0-9_-]+)"', html)
    assert match, "no item on page"
    return match.group(1)


def start_rating(client: object, token: str) -> tuple[str, str]:
    """Sign in and open the rater page; returns the page and its CSRF token."""
    login(client, token)
    html = client.get("/rate").text  # type: ignore[attr-defined]
    return html, form_value(html, "csrf_token")


def switch_to(client: object, token: str) -> None:
    """Act as the invite's owner on one test client, like switching between browser profiles.

    An invite works once, so the first call redeems it and keeps that person's session cookie;
    later calls for the same token put the kept cookie back instead of redeeming it again.
    """
    cookies = client.cookies  # type: ignore[attr-defined]
    kept: dict[str, str] = client.__dict__.setdefault("_kept_sessions", {})
    if token in kept:
        cookies.delete("rlhf_session")
        cookies.set("rlhf_session", kept[token])
        return
    login(client, token)
    kept[token] = cookies.get("rlhf_session")


Pick = Callable[[Assignment, Comparison], str]
"""The choice a test rater makes on an item: left, right, tie or both_bad."""


def tie(_a: Assignment, _c: Comparison) -> str:
    return "tie"


def checkpoint_side(a: Assignment, _c: Comparison) -> str:
    return a.checkpoint_side


def judge_queue(session: Session, rater_id: int, pick: Pick, rationale: str | None = None) -> int:
    """Serve and judge every item the rater's queue gives, as the rater page would; returns
    how many were judged."""
    count = 0
    while (a := rating.next_assignment(session, rater_id)) is not None:
        rating.serve(session, a)
        comparison = session.get(Comparison, a.comparison_id)
        assert comparison is not None
        rating.record_judgement(
            session,
            rater_id=rater_id,
            public_id=a.public_id,
            choice=pick(a, comparison),
            rationale=rationale,
            idempotency_key=a.public_id,
        )
        count += 1
    return count
