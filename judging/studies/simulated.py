"""Simulated raters: rater accounts driven through the real HTTP API by the gold preference.

Each simulated rater behaves as a person with a browser without JavaScript would: it opens its
invite link (which sets the session cookie), reads the item on /rate, and posts the judge form
with the CSRF token and idempotency key the page carries; the 303 redirect brings the next item.
It sees only what a person sees (the prompt and the two responses as rendered text), scores both
with the gold preference and chooses with `judging.gold.rater_choice` (noise and position bias).

Simulated accounts are named `sim-...` so that exports, QC and the dashboard can tell them apart.
Only the standard library is used (urllib with a cookie jar), so the core needs no HTTP client.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import CookieJar

from sqlalchemy import select
from sqlalchemy.orm import Session

from judging.data.models import Comparison, Generation, Prompt, Rater, Study
from judging.gold import RaterSpec, rater_choice
from judging.studies.lookups import study_rater_ids
from judging.studies.raters import invite_rater
from judging.studies.service import add_rater

SIM_PREFIX = "sim-"

ScoreFn = Callable[[str, str], float]
"""(prompt text, response text) -> gold score."""


def is_simulated(name: str) -> bool:
    return name.startswith(SIM_PREFIX)


def sim_rater_name(study_id: int, index: int) -> str:
    return f"{SIM_PREFIX}s{study_id}-{index:02d}"


def text_key(text: str) -> str:
    """Letters only, lower-cased: the same for a stored text and its rendered markdown."""
    return " ".join(re.findall(r"[^\W\d_]+", text.lower()))


@dataclass
class Item:
    public_id: str
    csrf: str
    key: str
    prompt: str
    left: str
    right: str


class _RatePage(HTMLParser):
    """Pulls the judge form's hidden fields and the three rendered texts out of /rate."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.texts: list[str] = []
        self._in_judge_form = False
        self._md_depth = 0
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "judge-form" in a.get("class", "").split():
            self._in_judge_form = True
            self.action = a.get("action")
        elif tag == "input" and self._in_judge_form and a.get("type") == "hidden":
            self.fields[a.get("name", "")] = a.get("value", "")
        if self._md_depth:
            if tag == "div":
                self._md_depth += 1
            if tag in ("p", "li", "br", "h1", "h2", "h3", "h4", "pre", "tr"):
                self._buffer.append("\n")
        elif tag == "div" and "md" in a.get("class", "").split():
            self._md_depth = 1
            self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_judge_form = False
        if self._md_depth and tag == "div":
            self._md_depth -= 1
            if not self._md_depth:
                self.texts.append(re.sub(r"\n{2,}", "\n", "".join(self._buffer)).strip())

    def handle_data(self, data: str) -> None:
        if self._md_depth:
            self._buffer.append(data)


def parse_item(page: str) -> Item | None:
    """The item on a /rate page, or None when the queue is done."""
    parser = _RatePage()
    parser.feed(page)
    if not parser.action or len(parser.texts) < 3:
        return None
    public_id = parser.action.rstrip("/").rsplit("/", 1)[-1]
    return Item(
        public_id=public_id,
        csrf=parser.fields.get("csrf_token", ""),
        key=parser.fields.get("key", ""),
        prompt=html.unescape(parser.texts[0]),
        left=html.unescape(parser.texts[1]),
        right=html.unescape(parser.texts[2]),
    )


class RaterClient:
    """One browser: a cookie jar and urllib, following the app's 303 redirects."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str) -> str:
        with self._opener.open(self.base_url + path, timeout=self.timeout) as response:
            body: bytes = response.read()
        return body.decode("utf-8")

    def post(self, path: str, data: dict[str, str]) -> str:
        encoded = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base_url + path, data=encoded, method="POST")
        with self._opener.open(request, timeout=self.timeout) as response:
            body: bytes = response.read()
        return body.decode("utf-8")

    def login(self, token: str) -> str:
        """Redeem the one-time invite as the invite page's script does: POST it, never in a URL."""
        return self.post("/invite", {"token": token})

    def judge(self, item: Item, choice: str, client_ms: int) -> str:
        form = {"csrf_token": item.csrf, "key": item.key, "choice": choice}
        form["client_ms"] = str(client_ms)
        return self.post(f"/rate/{item.public_id}", form)


@dataclass
class SimulatedRater:
    name: str
    token: str
    rng: random.Random
    client: RaterClient
    page: str = ""
    judged: int = 0


@dataclass
class SimulationResult:
    judged: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.judged.values())


def rater_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def run_raters(
    base_url: str,
    tokens: dict[str, str],
    score: ScoreFn,
    spec: RaterSpec,
    *,
    seed: int = 0,
    max_items: int | None = None,
    on_verdict: Callable[[str, int], None] | None = None,
) -> SimulationResult:
    """Log every rater in, then judge round-robin (one item each per round) until all are done."""
    raters = [
        SimulatedRater(name, token, random.Random(rater_seed(seed, name)), RaterClient(base_url))
        for name, token in sorted(tokens.items())
    ]
    for rater in raters:
        rater.page = rater.client.login(rater.token)
    result = SimulationResult({r.name: 0 for r in raters})
    active = list(raters)
    while active:
        still = []
        for rater in active:
            item = parse_item(rater.page)
            if item is None or (max_items is not None and rater.judged >= max_items):
                continue
            choice = rater_choice(
                score(item.prompt, item.left), score(item.prompt, item.right), spec, rater.rng
            )
            rater.page = rater.client.judge(item, choice, client_ms=rater.rng.randint(4000, 40000))
            rater.judged += 1
            result.judged[rater.name] = rater.judged
            if on_verdict is not None:
                on_verdict(rater.name, rater.judged)
            still.append(rater)
        active = still
    return result


def enlist_sim_raters(session: Session, study: Study, count: int) -> dict[str, str]:
    """Create (or re-issue links for) `count` sim raters and add the missing ones to the study.

    Returns name -> invite token; the caller commits before the raters log in.
    """
    members = set(study_rater_ids(session, study.id))
    tokens: dict[str, str] = {}
    for index in range(1, count + 1):
        rater, token = invite_rater(session, name=sim_rater_name(study.id, index))
        tokens[rater.name] = token
        if rater.id not in members:
            add_rater(session, study, rater.id)
    return tokens


def study_texts(session: Session, study_id: int) -> list[tuple[str, str]]:
    """Every (prompt, response) a rater of this study can see, attention-check copies included."""
    rows = session.execute(
        select(
            Prompt.text,
            Comparison.candidate_generation_id,
            Comparison.reference_generation_id,
            Comparison.degraded_text,
        )
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .where(Comparison.study_id == study_id)
    ).all()
    ids = {g for _, c, r, _ in rows for g in (c, r) if g is not None}
    texts = dict(
        session.execute(select(Generation.id, Generation.text).where(Generation.id.in_(ids))).all()
    )
    out: list[tuple[str, str]] = []
    for prompt, cand, ref, degraded in rows:
        out += [(prompt, texts[g]) for g in (cand, ref) if g is not None]
        if degraded is not None:
            out.append((prompt, degraded))
    return list(dict.fromkeys(out))


def cached_score(
    pairs: Sequence[tuple[str, str]], scores: Sequence[float], fallback: ScoreFn
) -> ScoreFn:
    """Look a rendered (prompt, response) up by its letters; score unknown ones with `fallback`."""
    table = {(text_key(p), text_key(r)): s for (p, r), s in zip(pairs, scores, strict=True)}

    def score(prompt: str, response: str) -> float:
        hit = table.get((text_key(prompt), text_key(response)))
        return hit if hit is not None else fallback(prompt, response)

    return score


def sim_raters_of(session: Session, study_id: int) -> list[Rater]:
    ids = study_rater_ids(session, study_id)
    return [
        r for r in session.scalars(select(Rater).where(Rater.id.in_(ids))) if is_simulated(r.name)
    ]
