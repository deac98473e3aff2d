"""Hostile input at every route: schema-driven (schemathesis) and property-based (hypothesis).

No request may end in a 500; refusals are 4xx with a message. Counts of requests and status codes
are printed at the end of the module (`pytest -s`) for the report.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from judging.studies import service as studies
from tests.judging_helpers import Lab, build_lab, login

TALLY: Counter[str] = Counter()
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    print("\nfuzzing tally:", dict(sorted(TALLY.items())))


@pytest.fixture
def client(client: Any, db_session: Session) -> Any:
    """Each request in a savepoint of its own, as each has its own transaction in production: a
    statement the database refuses must not poison the test's shared transaction."""
    from app.deps import get_db

    def _session() -> Iterator[Session]:
        savepoint = db_session.begin_nested()
        try:
            yield db_session
            db_session.flush()
        except BaseException:
            # The app may have committed (released) this savepoint already; then the session's
            # own savepoint since that commit is the one to undo.
            if savepoint.is_active:
                savepoint.rollback()
            else:
                db_session.rollback()
            raise
        else:
            if savepoint.is_active:
                savepoint.commit()

    client.app.dependency_overrides[get_db] = _session
    return client


@pytest.fixture
def lab(db_session: Session, tmp_path: Path) -> Lab:
    lab = build_lab(db_session, tmp_path, prompts=3, steps=(5,), raters=("alice", "admin"))
    studies.create_study(
        db_session,
        name="fuzz",
        checkpoint_ids=[lab.trained[0].id],
        prompt_set_id=lab.prompt_set_id,
        rater_ids=[lab.raters[0].id, lab.raters[1].id],
        attention_check_rate=0,
    )
    return lab


def _session_of(client: Any, token: str) -> tuple[str, str]:
    login(client, token)
    page = client.get("/rate").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    return client.cookies["rlhf_session"], csrf.group(1)


def test_schema_fuzz_never_500(client: Any, lab: Lab) -> None:
    """Every operation of the OpenAPI schema, signed in as admin with a valid CSRF token."""
    cookie, csrf = _session_of(client, lab.tokens["admin"])
    # The schema is an admin page (it names every route a rater must not learn of).
    api = schemathesis.openapi.from_asgi(
        "/openapi.json", client.app, headers={"Cookie": f"rlhf_session={cookie}"}
    )
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:
        if operation.path == "/logout":
            continue  # would end the session the other operations run under
        TALLY["schemathesis operations"] += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            response = case.call(headers={"X-CSRF-Token": csrf}, cookies={"rlhf_session": cookie})
            TALLY[f"schemathesis {response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

        call()
    assert failures == []


FIELDS = st.sampled_from(
    [
        *("choice", "rationale", "key", "client_ms", "reason", "csrf_token", "name", "role"),
        *("token", "checkpoints", "raters", "prompt_set", "raters_per_comparison", "status"),
        *("attention_check_rate", "rater", "reference"),
    ]
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "\x00",
            "left\x00",
            "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            "=cmd|' /C calc'!A0",
            "<script>alert(1)</script>",
            "9" * 400,
            "-1e309",
            "nan",
        ]
    ),
)


def _assert_clear(response: Any, what: str) -> None:
    code = response.status_code
    TALLY[f"hypothesis {code // 100}xx"] += 1
    assert code < 500, f"{what}: {code} {response.text[:300]!r}"
    if 400 <= code < 500 and code != 422:
        assert response.text.strip(), f"{what}: {code} without a message"


@FUZZ
@given(form=st.dictionaries(FIELDS, HOSTILE_TEXT, max_size=6), skip=st.booleans())
def test_rater_forms_never_500(client: Any, lab: Lab, form: dict[str, str], skip: bool) -> None:
    if "rlhf_session" not in client.cookies:
        login(client, lab.tokens["alice"])
    page = client.get("/rate")
    match = re.search(r'action="/rate/([A-Za-z0-9_-]+)"', page.text)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    target = f"/rate/{match.group(1)}" if match else "/rate/undo"
    data = {"csrf_token": csrf.group(1), **form}
    response = client.post(target + ("/skip" if skip and match else ""), data=data)
    _assert_clear(response, f"POST {target} {data!r}")


@FUZZ
@given(body=st.binary(max_size=2000), path=st.sampled_from(["/rate/undo", "/invite", "/logout"]))
def test_raw_bodies_never_500(client: Any, lab: Lab, body: bytes, path: str) -> None:
    response = client.post(
        path, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    _assert_clear(response, f"POST {path} {body[:80]!r}")


@FUZZ
@given(form=st.dictionaries(FIELDS, HOSTILE_TEXT, max_size=6))
def test_admin_forms_never_500(client: Any, lab: Lab, form: dict[str, str]) -> None:
    if "rlhf_session" not in client.cookies:
        login(client, lab.tokens["admin"])
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin").text)
    assert csrf
    for path in ("/admin/raters", "/admin/studies", "/admin/studies/1/status"):
        response = client.post(path, data={"csrf_token": csrf.group(1), **form})
        _assert_clear(response, f"POST {path} {form!r}")


def test_oversized_bodies_are_refused(client: Any, lab: Lab) -> None:
    login(client, lab.tokens["alice"])
    limit = client.app.state.settings.max_body_bytes
    big = b"rationale=" + b"x" * (limit + 1)
    declared = client.post(
        "/rate/undo", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert declared.status_code == 413 and "larger than" in declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096

    streamed = client.post(
        "/rate/undo",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413
    assert client.get("/rate").status_code == 200  # the session and app carry on


def test_ids_past_the_integer_range_are_a_400(client: Any, lab: Lab) -> None:
    """Found by schemathesis: PostgreSQL refused 2**31 as an integer and the app answered 500."""
    login(client, lab.tokens["admin"])
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin").text)
    assert csrf
    assert client.get(f"/admin/studies/{2**40}").status_code == 400
    created = client.post(
        "/admin/studies",
        data={"csrf_token": csrf.group(1), "name": "x", "checkpoints": str(2**40)},
    )
    assert created.status_code == 409 and "out of range" in created.text
