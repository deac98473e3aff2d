"""Profile the rater's hot paths: SQL statements and time per request, on a realistic study.

Creates a throw-away database on the server of TEST_DATABASE_URL, seeds one run with --steps
checkpoints x --prompts held-out prompts and a study over --raters raters (2 per comparison,
5% attention checks, --judged of it already judged), then:

1. in process (TestClient, no network): counts the SQL statements and their time for each kind
   of rater request (next item as a page and as the htmx partial, submit as a plain form and as
   htmx), prints the statements of one request of each kind, and EXPLAIN ANALYZEs them;
2. over a real uvicorn (one worker, loopback), one client, sequentially: --requests rounds of
   "next item, submit", with p50/p95/p99 per endpoint and the CPU the app process and the
   database's server processes spent per round (Linux /proc, local server only).

    PYTHONPATH=. .venv/bin/python bench/profile_rater.py --requests 300 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from judging.data.db import make_engine
from judging.data.migrate import upgrade
from judging.studies import service as studies
from tests.judging_helpers import build_lab
from tests.live_app import LiveApp

ITEM = re.compile(r'class="judge-form" method="post" action="/rate/([A-Za-z0-9_-]+)"')
KEY = re.compile(r'name="key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTMX = {"HX-Request": "true"}


@dataclass
class Statement:
    sql: str
    params: Any
    ms: float


@dataclass
class SqlLog:
    """Every statement the engine sends, with its parameters and its time on the wire."""

    statements: list[Statement] = field(default_factory=list)
    _started: float = 0.0

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, sql: str, params: Any, *_rest: Any) -> None:
        ms = (time.perf_counter() - self._started) * 1000
        self.statements.append(Statement(sql, params, ms))

    @contextmanager
    def request(self) -> Iterator[list[Statement]]:
        self.statements = []
        taken: list[Statement] = []
        yield taken
        taken.extend(self.statements)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        **{f"p{q}_ms": round(percentile(values, q), 2) for q in (50, 95, 99)},
    }


def seed(
    url: str, steps: int, prompts: int, raters: int, data_dir: Path, judged: float
) -> dict[str, str]:
    upgrade(url)
    engine = make_engine(url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    names = tuple(f"rater{i:02d}" for i in range(raters))
    lab = build_lab(
        session, data_dir, prompts=prompts, steps=tuple(range(10, 10 * steps + 1, 10)), raters=names
    )
    studies.create_study(
        session,
        name="profile",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        raters_per_comparison=2,
        attention_check_rate=0.05,
    )
    session.commit()
    session.close()
    with engine.connect() as conn:
        # A study under way: a share of every queue already judged (the undo and progress
        # queries then read real judgements).
        conn.execute(
            text(
                "WITH judged AS (UPDATE assignments SET status = 'done', done_at = now() "
                "WHERE random() < :share RETURNING id) "
                "INSERT INTO judgements (assignment_id, choice, idempotency_key, created_at) "
                "SELECT id, 'tie', 'seed-' || id, now() - random() * interval '3 days' FROM judged"
            ),
            {"share": judged},
        )
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()
    return lab.tokens


def _item_form(html: str) -> tuple[str, dict[str, str]]:
    item, key, csrf = ITEM.search(html), KEY.search(html), CSRF.search(html)
    assert item and key and csrf, html[:500]
    return item.group(1), {"choice": "left", "key": key.group(1), "csrf_token": csrf.group(1)}


def count_statements(url: str, data_dir: Path, token: str, rounds: int) -> dict[str, Any]:
    """Statements per request kind (in process), with one sample request's SQL of each kind."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from judging.settings import Settings

    settings = Settings(DATABASE_URL=url, RLHF_DATA_DIR=data_dir, RLHF_ENV="test")  # type: ignore[call-arg]
    app = create_app(settings)
    log = SqlLog()
    log.attach(app.state.engine)
    per_kind: dict[str, list[int]] = defaultdict(list)
    sql_ms: dict[str, list[float]] = defaultdict(list)
    samples: dict[str, list[Statement]] = {}
    with TestClient(app) as client:
        assert client.post("/invite", data={"token": token}, follow_redirects=False).is_redirect

        def one(kind: str, send: Any) -> httpx.Response:
            with log.request() as taken:
                response: httpx.Response = send()
            per_kind[kind].append(len(taken))
            sql_ms[kind].append(sum(s.ms for s in taken))
            samples[kind] = taken
            return response

        for n in range(rounds):
            htmx = n % 2 == 1
            page = one(
                "next (htmx)" if htmx else "next (page)",
                lambda h=htmx: client.get("/rate", headers=HTMX if h else {}),
            )
            item, form = _item_form(page.text)
            one(
                "submit (htmx, returns next)" if htmx else "submit (form, 303)",
                lambda h=htmx, i=item, f=form: client.post(
                    f"/rate/{i}", data=f, headers=HTMX if h else {}, follow_redirects=False
                ),
            )
    engine: Engine = app.state.engine
    plans = explain(engine, samples)
    engine.dispose()
    return {
        "statements": {k: max(v) for k, v in per_kind.items()},
        "statements_min": {k: min(v) for k, v in per_kind.items()},
        "sql_ms": {k: summary(v) for k, v in sql_ms.items()},
        "sample_sql": {
            k: [f"{s.ms:7.2f} ms  {' '.join(s.sql.split())[:220]}" for s in v]
            for k, v in samples.items()
        },
        "explain": plans,
    }


def explain(engine: Engine, samples: dict[str, list[Statement]]) -> list[str]:
    """EXPLAIN ANALYZE each sampled statement (inside a transaction that is rolled back)."""
    out: list[str] = []
    seen: set[str] = set()
    for kind, statements in samples.items():
        for s in statements:
            if s.sql in seen or not s.sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
                continue
            seen.add(s.sql)
            with engine.connect() as conn:
                rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + s.sql, s.params)
                plan = [r[0] for r in rows]
                conn.rollback()
            out.append(f"--- [{kind}] {' '.join(s.sql.split())[:300]}")
            out.extend(plan)
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _backends(url: str) -> list[int]:
    """PostgreSQL server processes serving this database (local server only)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        pids = list(
            conn.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        )
    engine.dispose()
    return pids


def sequential(url: str, data_dir: Path, token: str, rounds: int) -> dict[str, Any]:
    """One client against a real uvicorn worker: next item, submit (plain form, 303), repeated.
    Also the CPU the app process and the database backends spent per round."""
    app = LiveApp(url, data_dir, workers=1)
    app.start()
    latency: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, float] = {}
    try:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            assert client.post("/invite", data={"token": token}).status_code == 303

            def timed(kind: str, send: Any) -> httpx.Response:
                started = time.perf_counter()
                response: httpx.Response = send()
                latency[kind].append((time.perf_counter() - started) * 1000)
                assert response.status_code in (200, 303), response.text[:300]
                return response

            def one_round() -> None:
                page = timed("next", lambda: client.get("/rate"))
                item, form = _item_form(page.text)
                timed("submit", lambda: client.post(f"/rate/{item}", data=form))

            for _ in range(10):  # warm up: pool filled, statements prepared
                one_round()
            latency.clear()
            assert app.process is not None
            pids = {"app": [app.process.pid], "postgres": _backends(url)}
            before = {k: _cpu_seconds(v) for k, v in pids.items()}
            for _ in range(rounds):
                one_round()
            cpu = {
                f"{k}_cpu_ms_per_round": round((_cpu_seconds(v) - before[k]) * 1000 / rounds, 2)
                for k, v in pids.items()
            }
    finally:
        app.stop()
    return {**{k: summary(v) for k, v in latency.items()}, **cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="checkpoints judged")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--raters", type=int, default=3)
    parser.add_argument("--judged", type=float, default=0.5, help="share already judged")
    parser.add_argument("--requests", type=int, default=300, help="sequential rounds")
    parser.add_argument("--count-rounds", type=int, default=20, help="in-process rounds")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--explain", action="store_true", help="print the plans")
    args = parser.parse_args()
    admin_url = os.environ.get(
        "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"rlhf_profile_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            tokens = seed(url, args.steps, args.prompts, args.raters, Path(tmp), args.judged)
            print(f"seeded in {time.monotonic() - t0:.1f}s", flush=True)
            names = sorted(tokens)
            counted = count_statements(url, Path(tmp), tokens[names[0]], args.count_rounds)
            timings = sequential(url, Path(tmp), tokens[names[1]], args.requests)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    figures = {
        "study": f"{args.steps} checkpoints x {args.prompts} prompts, {args.raters} raters, "
        f"{args.judged:.0%} judged",
        "load_average": os.getloadavg(),
        "statements_per_request": counted["statements"],
        "statements_per_request_min": counted["statements_min"],
        "sql_time_per_request": counted["sql_ms"],
        "sequential_latency": timings,
    }
    for kind, lines in counted["sample_sql"].items():
        print(f"\n== {kind}: {len(lines)} statements")
        print(*lines, sep="\n")
    if args.explain:
        print("\n== EXPLAIN ANALYZE", *counted["explain"], sep="\n")
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**figures, **counted}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
