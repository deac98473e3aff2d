"""Research page latency on a 10-checkpoint x 200-prompt x 2-rater study with every verdict in.

Creates a throw-away PostgreSQL database (TEST_DATABASE_URL or local trust auth), seeds a PPO run
(base + 10 checkpoints, held-out summaries, 200 logged steps of 6 training metrics), a DPO
reference run, 200 held-out prompts with responses, a study judged by two raters (4,000 verdicts),
then requests every research page through the app in-process and prints the first (cold: the
bootstrap intervals are computed) and the p50/p95 of the following requests.

    .venv/bin/python bench/bench_dashboard.py [--prompts 200] [--checkpoints 10] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.data import registry
from judging.data.db import make_engine
from judging.data.migrate import upgrade
from judging.settings import Settings
from tests.dashboard_helpers import add_evaluation, build_research_lab, summary

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _seed(url: str, folder: Path, prompts: int, checkpoints: int) -> dict[str, object]:
    engine = make_engine(url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    rng = random.Random(0)
    steps = tuple(10 * (i + 1) for i in range(checkpoints))
    texts = {
        (who, i): " ".join(f"Point {k} on topic {i}." for k in range(rng.randint(2, 4 + n)))
        for n, who in enumerate(["base", *map(str, steps)])
        for i in range(prompts)
    }
    quality = {s: 0.5 + 0.4 * (k / checkpoints) * (1 - k / checkpoints) * 4 for k, s in
               enumerate(steps, 1)}  # fmt: skip

    def verdict(step: int, prompt: int, rater: int) -> str:
        draw = random.Random(f"{step}/{prompt}/{rater}").random()
        return "tie" if draw > 0.9 else "checkpoint" if draw < quality[step] * 0.9 else "reference"

    lab = build_research_lab(
        session,
        folder,
        prompts=prompts,
        steps=steps,
        summaries={
            0: summary(0.0, 0.0, 60.0),
            **{s: summary(0.1 * k, 0.5 * k, 60.0 + 8 * k) for k, s in enumerate(steps, 1)},
        },
        verdict=verdict,
        texts=texts,
        run_name="bench-ppo",
        metrics={
            step: {
                "objective/scores": 0.01 * step + rng.gauss(0, 0.1),
                "objective/rlhf_reward": 0.008 * step,
                "objective/kl": 0.05 * step,
                "objective/kl_coef": 0.05,
                "response_length": 60 + step / 3,
                "truncation_rate": 0.01 * (step % 7),
            }
            for step in range(1, steps[-1] + 1)
        },
    )
    dpo = registry.start_run(
        session, name="bench-dpo", algorithm="dpo", base_model="models/base", config={}
    )
    folder_dpo = folder / "dpo"
    folder_dpo.mkdir()
    (folder_dpo / "adapter_model.safetensors").write_bytes(b"w")
    dpo_ckpt = registry.register_checkpoint(session, run_id=dpo.id, step=50, path=folder_dpo)
    add_evaluation(session, dpo_ckpt, lab.lab.prompt_set_id, summary(0.4, 1.2, 70.0))
    session.commit()
    ids = {
        "run": lab.lab.base.run_id,
        "dpo": dpo.id,
        "study": lab.study.id,
        "checkpoint": lab.lab.trained[-1].id,
        "prompt": lab.lab.prompt_ids[0],
        "token": lab.admin_token,
    }
    session.close()
    engine.dispose()
    return ids


def _pages(ids: dict[str, object]) -> dict[str, str]:
    return {
        "overview (2 runs)": f"/research?run={ids['run']}&run={ids['dpo']}",
        "run": f"/research/runs/{ids['run']}",
        "study": f"/research/studies/{ids['study']}",
        "checkpoint": f"/research/checkpoints/{ids['checkpoint']}",
        "prompt drill-down": f"/research/prompts/{ids['prompt']}",
        "report.md": f"/research/studies/{ids['study']}/report.md",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    from app.main import create_app

    name = f"rlhf_bench_dash_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            ids = _seed(url, Path(tmp), args.prompts, args.checkpoints)
            with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text("ANALYZE"))  # what autovacuum does on a live database
            print(
                f"seeded {args.checkpoints} checkpoints x {args.prompts} prompts x 2 raters "
                f"in {time.perf_counter() - start:.1f} s"
            )
            settings = Settings(DATABASE_URL=url, RLHF_DATA_DIR=tmp, RLHF_ENV="test")  # type: ignore[call-arg]
            app = create_app(settings)
            with TestClient(app) as client:
                signed = client.post("/invite", data={"token": ids["token"]})  # one-time invite
                assert signed.status_code == 200
                print(f"{'page':<20} {'cold ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>6}")
                for label, path in _pages(ids).items():
                    timings = []
                    size = 0
                    for _ in range(args.repeat + 1):
                        t0 = time.perf_counter()
                        response = client.get(path)
                        timings.append(1000 * (time.perf_counter() - t0))
                        assert response.status_code == 200, (path, response.status_code)
                        size = len(response.content)
                    warm = sorted(timings[1:])
                    p95 = warm[min(len(warm) - 1, int(0.95 * len(warm)))]
                    print(
                        f"{label:<20} {timings[0]:>8.0f} {statistics.median(warm):>8.0f} "
                        f"{p95:>8.0f} {size / 1024:>6.0f}"
                    )
            app.state.engine.dispose()
        print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
