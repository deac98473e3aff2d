"""How often does a rater meet the same response text? (must be once per text, ever)

Builds a throw-away PostgreSQL database with one run: a base and CHECKPOINTS trained checkpoints,
PROMPTS held-out prompts, generated texts (each checkpoint one sample per prompt on the shared
seed, the base one independent sample per checkpoint on seeds 1..), creates a study with RATERS
raters, then serves and judges every item of every queue exactly as the rater page does
(rating.queue_state + record_judgement). Prints, per rater, the items served, distinct texts and
the most times any one text was shown, and the share of items with the checkpoint on the left.

    .venv/bin/python bench/blind_repeats.py [--checkpoints 10] [--prompts 200] [--raters 2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.data.db import make_engine
from judging.data.migrate import upgrade
from judging.data.models import Assignment
from judging.studies import rating
from judging.studies import service as studies
from tests.judging_helpers import build_lab

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _texts(checkpoints: int, prompts: int) -> dict[tuple[str, int], str]:
    """Random multi-sentence answers; the base gets one per checkpoint ("base", "base#2", ...)."""
    rng = random.Random(0)
    whos = ["base", *[f"base#{r}" for r in range(2, checkpoints + 1)]]
    whos += [str(10 * (c + 1)) for c in range(checkpoints)]
    return {
        (who, i): " ".join(
            f"Point {k} about topic {i}: {rng.random():.6f}." for k in range(rng.randint(2, 6))
        )
        for who in whos
        for i in range(prompts)
    }


def run(url: str, folder: Path, checkpoints: int, prompts: int, raters: int) -> None:
    engine = make_engine(url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    names = tuple(f"rater{i}" for i in range(raters))
    lab = build_lab(
        session,
        folder,
        prompts=prompts,
        steps=tuple(10 * (c + 1) for c in range(checkpoints)),
        raters=names,
        run_name="blind-bench",
        texts=_texts(checkpoints, prompts),
    )
    start = time.perf_counter()
    studies.create_study(
        session,
        name="blind-bench",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0.05,
        seed=1,
    )
    session.commit()
    print(f"study created in {time.perf_counter() - start:.1f} s")
    worst = 0
    for rater in lab.raters:
        shown: Counter[str] = Counter()
        lefts = items = 0
        while (state := rating.queue_state(session, rater.id)).item is not None:
            item = state.item
            side = session.scalar(
                select(Assignment.checkpoint_side).where(Assignment.public_id == item.public_id)
            )
            shown.update([item.left, item.right])
            lefts += side == "left"
            items += 1
            rating.record_judgement(
                session,
                rater_id=rater.id,
                public_id=item.public_id,
                choice="tie",
                rationale=None,
                idempotency_key=item.idempotency_key,
            )
        session.commit()
        most = max(shown.values(), default=0)
        worst = max(worst, most)
        print(
            f"{rater.name}: {items} items served, {len(shown)} distinct texts, "
            f"most times one text was shown: {most}, checkpoint on the left: {lefts / items:.1%}"
        )
    print(f"most times any rater saw any response text: {worst}")
    session.close()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--raters", type=int, default=2)
    args = parser.parse_args()
    name = f"rlhf_blind_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            run(url, Path(tmp), args.checkpoints, args.prompts, args.raters)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
