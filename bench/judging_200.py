"""Manual end-to-end run: a 200-prompt study judged completely by two raters in two browsers.

Creates a throw-away PostgreSQL database (TEST_DATABASE_URL or local trust auth), seeds one run
with a base and CHECKPOINTS trained checkpoints, 200 held-out prompts and their generations,
starts the app under uvicorn, and drives two Chromium contexts with the keyboard until both
queues are empty (one reload and one undo on the way). Prints timings and the QC figures.

    .venv/bin/python bench/judging_200.py [--checkpoints 2] [--prompts 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judging.data.db import make_engine
from judging.data.migrate import upgrade
from judging.data.models import Study
from judging.settings import Settings
from judging.studies import qc
from judging.studies import service as studies
from tests.judging_helpers import build_lab

ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _seed(
    url: str, folder: Path, prompts: int, checkpoints: int
) -> tuple[dict[str, str], int, float]:
    engine = make_engine(url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    rng = random.Random(0)
    texts = {}
    for who in ["base", *[str(10 * (i + 1)) for i in range(checkpoints)]]:
        for i in range(prompts):
            sentences = [
                f"Point {k} about topic {i} from {rng.random():.3f}."
                for k in range(rng.randint(2, 6))
            ]
            texts[(who, i)] = " ".join(sentences)
    lab = build_lab(
        session,
        folder,
        prompts=prompts,
        steps=tuple(10 * (i + 1) for i in range(checkpoints)),
        raters=("alice", "bob", "admin"),
        run_name="bench-run",
        texts=texts,
    )
    start = time.perf_counter()
    study = studies.create_study(
        session,
        name="bench",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id],
        attention_check_rate=0.05,
        seed=1,
    )
    session.commit()
    took = time.perf_counter() - start
    session.close()
    engine.dispose()
    return lab.tokens, study.id, took


def _judge_all(browser: object, base: str, token: str, name: str, out: dict[str, object]) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{base}/invite#{token}")
    total = int(page.locator("#total-count").inner_text())
    latencies = []
    rng = random.Random(name)
    done, undone = 0, False
    while done < total:
        start = time.perf_counter()
        page.keyboard.press(rng.choice(["1", "2", "2", "3"]))
        done += 1
        expect(page.locator("#done-count")).to_have_text(str(done))
        latencies.append(time.perf_counter() - start)
        if done % 50 == 0 or os.environ.get("BENCH_VERBOSE"):
            print(f"{name}: {done}/{total}, last {latencies[-1]:.2f} s", flush=True)
        if done == total // 2 and not undone:
            undone = True
            page.reload()
            expect(page.locator("#done-count")).to_have_text(str(done))
            page.keyboard.press("u")
            done -= 1
            expect(page.locator("#done-count")).to_have_text(str(done))
    expect(page.locator(".done-card")).to_be_visible()
    context.close()
    out[name] = (total, latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=2)
    args = parser.parse_args()
    import uvicorn
    from playwright.sync_api import sync_playwright

    from app.main import create_app

    name = f"rlhf_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            tokens, study_id, create_s = _seed(url, Path(tmp), args.prompts, args.checkpoints)
            print(
                f"create_study: {create_s:.2f} s "
                f"({args.prompts} prompts x {args.checkpoints} checkpoints)"
            )
            settings = Settings(DATABASE_URL=url, RLHF_DATA_DIR=tmp, RLHF_ENV="test")  # type: ignore[call-arg]
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings), host="127.0.0.1", port=8765, log_level="warning"
                )
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            results: dict[str, object] = {}
            start = time.perf_counter()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                workers = [
                    threading.Thread(
                        target=_judge_all,
                        args=(browser, "http://127.0.0.1:8765", tokens[n], n, results),
                    )
                    for n in ("alice", "bob")
                ]
                # Playwright's sync API is not thread-safe: run the raters one after the other.
                for w in workers:
                    w.run()
                browser.close()
            wall = time.perf_counter() - start
            server.should_exit = True
            thread.join(timeout=10)
            for who, (total, lat) in results.items():  # type: ignore[misc]
                print(
                    f"{who}: {total} items, median {1000 * statistics.median(lat):.0f} ms, "
                    f"p95 {1000 * sorted(lat)[int(0.95 * len(lat))]:.0f} ms per verdict"
                )
            print(f"browser wall time: {wall:.1f} s")
            engine = make_engine(url)
            with sessionmaker(bind=engine)() as session:
                study = session.scalar(select(Study).where(Study.id == study_id))
                report = qc.study_qc(session, study)  # type: ignore[arg-type]
                print(
                    f"judged {report.done}/{report.total}; "
                    f"raw agreement {report.raw_agreement:.2f}, "
                    f"kappa {report.cohen_kappa:.2f}, alpha {report.krippendorff_alpha:.2f}"
                )
                for r in report.raters:
                    print(
                        f"  {r.name}: left share {r.left_share:.2f}, "
                        f"attention {r.attention_pass_rate}"
                    )
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
