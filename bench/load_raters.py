"""Load: N simulated raters against uvicorn workers + PostgreSQL, then an exactly-once audit.

Loopback only, bounded in time (--seconds) and in requests (--max-requests). Creates a throw-away
database on the PostgreSQL server of TEST_DATABASE_URL (local trust auth by default), seeds one
run, PROMPTS held-out prompts and a study over all raters, starts `uvicorn --workers W`, and runs
one asyncio task per rater: fetch the next item, submit a verdict; some submits are sent twice at
once (double click), some resent after their answer (retry), some followed by an undo. Reports
p50/p95/p99 per endpoint, throughput and errors, then checks in the database that every
acknowledged verdict is stored exactly once (an undone one withdrawn, not live) and no assignment
has two live verdicts.

    PYTHONPATH=. .venv/bin/python bench/load_raters.py --raters 100 --seconds 60 --workers 2
Exit status 1 when anything was lost, duplicated or answered with an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvloop
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bench.lean_http import LeanClient, LeanHTTPError
from bench.profile_rater import _backends, _cpu_seconds
from judging.data.db import make_engine
from judging.data.migrate import upgrade
from judging.data.models import Assignment, Judgement
from judging.studies import service as studies
from tests.judging_helpers import build_lab
from tests.live_app import LiveApp

ITEM = re.compile(r'class="judge-form" method="post" action="/rate/([A-Za-z0-9_-]+)"')
KEY = re.compile(r'name="key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHOICES = ("left", "right", "tie", "both_bad")


class Run:
    def __init__(self, deadline: float, max_requests: int) -> None:
        self.deadline = deadline
        self.budget = max_requests
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []
        # rater -> [(public id, key, choice)] acknowledged, in order (undo pops the last one)
        self.acked: dict[str, list[tuple[str, str, str]]] = defaultdict(list)

    def open(self) -> bool:
        return time.monotonic() < self.deadline and self.budget > 0

    async def timed(self, endpoint: str, request: Any) -> Any:
        """Await a request of either client; its response, or None after a transport error."""
        self.budget -= 1
        start = time.perf_counter()
        try:
            response = await request
        except (httpx.HTTPError, LeanHTTPError) as exc:
            self.errors.append(f"{endpoint}: {type(exc).__name__}")
            return None
        self.latency[endpoint].append((time.perf_counter() - start) * 1000)
        self.statuses[f"{endpoint} {response.status_code}"] += 1
        if response.status_code not in (200, 303):
            self.errors.append(f"{endpoint}: {response.status_code} {response.text[:120]!r}")
        return response


async def rater(name: str, client: Any, run: Run, rng: random.Random, think_s: float = 0.0) -> None:
    while run.open():
        if think_s:  # reading the item: exponential, mean think_s, never past the deadline
            left = run.deadline - time.monotonic()
            await asyncio.sleep(min(rng.expovariate(1 / think_s), max(0.0, left)))
            if not run.open():
                return
        page = await run.timed("next", client.get("/rate"))
        if page is None or "All done" in page.text:
            return
        item, key, csrf = ITEM.search(page.text), KEY.search(page.text), CSRF.search(page.text)
        if not (item and key and csrf):
            run.errors.append(f"next: no item on the page for {name}")
            return
        data = {"choice": rng.choice(CHOICES), "key": key.group(1), "csrf_token": csrf.group(1)}
        url = f"/rate/{item.group(1)}"
        roll = rng.random()
        if roll < 0.05:  # double click: the same form twice at once
            answers = await asyncio.gather(
                run.timed("submit", client.post(url, data=data)),
                run.timed("submit", client.post(url, data=data)),
            )
        else:
            answers = [await run.timed("submit", client.post(url, data=data))]
            if roll < 0.10:  # the answer was "lost": resend the same form
                answers.append(await run.timed("submit", client.post(url, data=data)))
        if any(a is not None and a.status_code == 303 for a in answers):
            run.acked[name].append((item.group(1), data["key"], data["choice"]))
        if 0.10 <= roll < 0.13:
            # The page's undo button names the verdict it withdraws: the item just judged.
            form = {"csrf_token": data["csrf_token"], "undo_item": item.group(1)}
            undo = await run.timed("undo", client.post("/rate/undo", data=form))
            if undo is not None and "flash=undone" in undo.headers.get("location", ""):
                run.acked[name].pop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def audit(url: str, run: Run) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        # Undo withdraws a verdict (the row stays, withdrawn_at set); only live rows count.
        live = Judgement.withdrawn_at.is_(None)
        stored = {
            pid: (key, choice)
            for pid, key, choice in conn.execute(
                select(Assignment.public_id, Judgement.idempotency_key, Judgement.choice)
                .join(Judgement, Judgement.assignment_id == Assignment.id)
                .where(live)
            )
        }
        doubled = conn.scalar(
            select(func.count()).select_from(
                select(Judgement.assignment_id)
                .where(live)
                .group_by(Judgement.assignment_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
    engine.dispose()
    acked = {pid: (key, choice) for rows in run.acked.values() for pid, key, choice in rows}
    lost = sum(1 for pid, v in acked.items() if stored.get(pid) != v)
    unacknowledged = len(set(stored) - set(acked))
    return {
        "acknowledged": len(acked),
        "stored": len(stored),
        "lost": lost,
        "stored_not_acknowledged": unacknowledged,
        "assignments_with_two": doubled or 0,
    }


def server_cpu_ms(app: LiveApp, url: str, requests: int) -> dict[str, float]:
    """CPU the app's processes and their PostgreSQL backends spent per request, over their whole
    life (sign-ins included): on a shared machine a steadier yardstick than latency."""
    assert app.process is not None
    workers = [app.process.pid, *_children(app.process.pid)]
    spent = {"app": _cpu_seconds(workers), "postgres": _cpu_seconds(_backends(url))}
    return {k: round(v * 1000 / max(requests, 1), 2) for k, v in spent.items()}


def machine_busy_s() -> float:
    """CPU seconds all processes on this machine have spent (Linux /proc/stat), idle and I/O wait
    excluded: counts what per-process figures miss (backends that exited, the kernel)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def connections_opened(url: str) -> int | None:
    """Sessions PostgreSQL started for this database so far (PostgreSQL 14+; this reading's own
    session may be among them, so a difference of two readings is good to within one): a pool
    that opens and closes connections under load shows here, and its backends' CPU is lost to
    `_backends`."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.scalar(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            )
            return None if value is None else int(value)
    except Exception:  # older servers have no such column; the figure is optional
        return None
    finally:
        engine.dispose()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


def seed(url: str, raters: int, prompts: int, data_dir: Path) -> dict[str, str]:
    upgrade(url)
    engine = make_engine(url)
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    names = tuple(f"rater{i:03d}" for i in range(raters))
    lab = build_lab(session, data_dir, prompts=prompts, steps=(10, 20), raters=names)
    studies.create_study(
        session,
        name="load",
        checkpoint_ids=[c.id for c in lab.trained],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[r.id for r in lab.raters],
        attention_check_rate=0,
    )
    session.commit()
    session.close()
    engine.dispose()
    return lab.tokens


def _clients(kind: str, base: str, names: list[str]) -> dict[str, Any]:
    """One client per rater, each with its own cookie jar (a browser each)."""
    if kind == "lean":
        return {n: LeanClient(base, timeout=30) for n in names}
    limits = httpx.Limits(max_connections=len(names) * 2 + 10)
    return {n: httpx.AsyncClient(base_url=base, timeout=30, limits=limits) for n in names}


async def drive(
    base: str,
    tokens: dict[str, str],
    seconds: float,
    max_requests: int,
    think_s: float = 0.0,
    client_kind: str = "lean",
) -> tuple[Run, float]:
    clients = _clients(client_kind, base, list(tokens))
    for name, client in clients.items():
        signed = await client.post("/invite", data={"token": tokens[name]})
        assert signed.status_code == 303, signed.text[:200]
    run = Run(time.monotonic() + seconds, max_requests)
    started = time.monotonic()
    await asyncio.gather(*(rater(n, c, run, random.Random(n), think_s) for n, c in clients.items()))
    elapsed = time.monotonic() - started
    for client in clients.values():
        await client.aclose()
    return run, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60, help="Wall-clock bound (max 900).")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--prompts", type=int, default=0, help="Default: enough for the run.")
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="Mean seconds a rater reads before each item (exponential); 0: no pause, which "
        "saturates the server and measures its queue rather than a request.",
    )
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="lean: bench/lean_http.py on uvloop (about 1 ms of CPU a request); httpx: the "
        "driver of rounds 5-7 (about 7 ms), which takes that much CPU from the server under test.",
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    seconds = min(args.seconds, 900.0)
    prompts = args.prompts or max(40, int(args.raters * 2 + seconds * 20))
    admin_url = os.environ.get(
        "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"rlhf_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    app = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            tokens = seed(url, args.raters, prompts, Path(tmp))
            print(
                f"seeded {args.raters} raters, {prompts} prompts x 2 checkpoints "
                f"in {time.monotonic() - t0:.1f}s"
            )
            app = LiveApp(url, Path(tmp), workers=args.workers)
            assert app.url.startswith("http://127.0.0.1:")  # loopback only
            app.start()
            driver_cpu, busy, opened = (
                time.process_time(),
                machine_busy_s(),
                connections_opened(url),
            )
            factory = uvloop.new_event_loop if args.client == "lean" else None
            with asyncio.Runner(loop_factory=factory) as runner:
                run, elapsed = runner.run(
                    drive(app.url, tokens, seconds, args.max_requests, args.think, args.client)
                )
            requests = sum(run.statuses.values())
            cpu = server_cpu_ms(app, url, requests)
            # The driver shares the cores: its cost per request is part of what the latencies see.
            cpu["driver"] = round((time.process_time() - driver_cpu) * 1000 / max(requests, 1), 2)
            cpu["machine"] = round((machine_busy_s() - busy) * 1000 / max(requests, 1), 2)
            now_opened = connections_opened(url)
            app.stop()
            figures: dict[str, Any] = {
                "raters": args.raters,
                "workers": args.workers,
                "think_s": args.think,
                "client": args.client,
                "seconds": round(elapsed, 1),
                "load_average": os.getloadavg(),
                "errors": len(run.errors),
                "statuses": dict(run.statuses),
                "audit": audit(url, run),
                "cpu_ms_per_request": cpu,
                "connections_opened": None
                if opened is None or now_opened is None
                else now_opened - opened,
            }
            for endpoint, values in sorted(run.latency.items()):
                figures[endpoint] = {
                    "count": len(values),
                    "per_s": round(len(values) / elapsed, 1),
                    **{f"p{q}_ms": round(percentile(values, q), 1) for q in (50, 95, 99)},
                }
    finally:
        if app is not None:
            app.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(json.dumps(figures, indent=2))
    if run.errors:
        print("first errors:", *run.errors[:10], sep="\n  ")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    bad = figures["audit"]
    # stored_not_acknowledged is reported, not a failure: a verdict whose answer never arrived.
    ok = not run.errors and bad["lost"] == 0 and bad["assignments_with_two"] == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
