"""Transport-level protections applied to every request and response.

A pure ASGI middleware (no per-request task or body copy, unlike BaseHTTPMiddleware):
- security headers on every response: a CSP without inline script, frame-ancestors 'none',
  nosniff, no Referer, and HSTS in production;
- bodies above settings.max_body_bytes refused with 413 (by Content-Length, or while streaming);
- a NUL byte or invalid UTF-8 in the path or query refused with 400 (the database would 500);
- `Cache-Control: no-store` on every response but the static assets: pages carry model outputs,
  rater data and invite forms, which must not stay in a shared browser's cache.
Also the in-memory limiter for invite-token guessing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
CACHEABLE_PREFIXES = ("/static/", "/favicon.ico")


class _TooLarge(Exception):
    pass


def _refusal(status: int, message: str) -> tuple[Message, Message]:
    body = (message + "\n").encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def _bad_target(scope: Scope) -> str | None:
    """Why the request line cannot be served, or None."""
    path: str = scope.get("path", "")
    if "\x00" in path:
        return "the URL path contains a NUL byte"
    raw_path = scope.get("raw_path") or path.encode()
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return "the URL path is not valid UTF-8"
    query: bytes = scope.get("query_string", b"")
    if query:
        decoded = unquote_to_bytes(query.replace(b"+", b" "))
        if b"\x00" in decoded:
            return "the query string contains a NUL byte"
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return "the query string is not valid UTF-8"
    return None


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.settings
        extra = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if settings.environment == "production":
            extra.append((b"strict-transport-security", HSTS.encode()))
        cacheable = scope.get("path", "").startswith(CACHEABLE_PREFIXES)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), *extra]
                if not cacheable and not any(name == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        problem = _bad_target(scope)
        if problem:
            for message in _refusal(400, problem):
                await send_with_headers(message)
            return
        limit: int = settings.max_body_bytes
        too_large = f"the request body is larger than the {limit} bytes allowed"
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                for message in _refusal(413, too_large):
                    await send_with_headers(message)
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except _TooLarge:
            if started:
                raise
            for message in _refusal(413, too_large):
                await send_with_headers(message)


class FailureLimiter:
    """At most `limit` failures per client in a sliding `window_s`; per process (per worker).

    The client is the connecting peer, or what a trusted proxy names (RLHF_TRUSTED_PROXIES).
    """

    def __init__(self, limit: int = 10, window_s: float = 900.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        stamps = self._failures.setdefault(client, deque())
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        return stamps

    def blocked(self, client: str) -> bool:
        return self.retry_after(client) > 0

    def retry_after(self, client: str) -> int:
        """Whole seconds until the client may fail again (0: it may now)."""
        with self._lock:
            now = time.monotonic()
            stamps = self._recent(client, now)
            if len(stamps) < self.limit:
                return 0
            # Free again once all but limit - 1 of the recent failures have left the window.
            frees_at = stamps[len(stamps) - self.limit] + self.window_s
            return max(1, math.ceil(frees_at - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(client, now).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
                self._failures.clear()
