"""A minimal HTTP/1.1 client on asyncio streams, for the load benchmark's simulated raters.

Why not httpx: the load driver shares the host's two cores with the app and PostgreSQL, and
httpx's async client spent 6.8 ms of CPU per request there (120 s under 100 raters),
more than PostgreSQL did; every millisecond the driver burns is one the server under test does
not get, and a busy driver loop also delays the moment a response is timed. Raters' browsers
run on other machines. This client does only what the benchmark needs: keep-alive connections
(one per request in flight), a cookie jar, url-encoded forms, Content-Length and chunked bodies.
`python bench/load_raters.py --client httpx` still runs the old driver for comparison.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

IDLE_S = 20.0
"""Drop a connection idle this long: under the server's keep-alive (30 s in LiveApp), so the
server never closes one while a request is on its way."""


class LeanHTTPError(OSError):
    """The connection failed or the answer was not HTTP/1.1 the client understands."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: float = field(default_factory=time.monotonic)

    def reusable(self) -> bool:
        fresh = time.monotonic() - self.used < IDLE_S
        return fresh and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class LeanClient:
    """`await client.get(path)`, `await client.post(path, data={...})`, `await client.aclose()`."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http://host:port is supported, not {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self._idle: list[_Connection] = []

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post(self, path: str, data: dict[str, str]) -> Response:
        body = urlencode(data).encode()
        return await self.request("POST", path, body, "application/x-www-form-urlencoded")

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str | None = None
    ) -> Response:
        conn = await self._connection()
        try:
            conn.writer.write(self._head(method, path, body, content_type) + body)
            response = await asyncio.wait_for(_read_response(conn.reader), self.timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            conn.close()
            raise LeanHTTPError(f"{method} {path}: {type(e).__name__} {e}") from e
        except TimeoutError as e:
            conn.close()
            raise LeanHTTPError(f"{method} {path}: no answer in {self.timeout} s") from e
        self._keep_cookies(response)
        if response.headers.get("connection", "").lower() == "close":
            conn.close()
        else:
            conn.used = time.monotonic()
            self._idle.append(conn)
        return response

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable():
                return conn
            conn.close()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as e:
            raise LeanHTTPError(f"connect to {self.host}:{self.port}: {e}") from e
        return _Connection(reader, writer)

    def _head(self, method: str, path: str, body: bytes, content_type: str | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _keep_cookies(self, response: Response) -> None:
        for cookie in response.headers.get("set-cookie", "").split("\n"):
            if "=" not in cookie:
                continue
            pair, *attributes = (part.strip() for part in cookie.split(";"))
            name, value = pair.split("=", 1)
            deleted = any(a.lower() in ("max-age=0", "max-age=-1") for a in attributes)
            if deleted or not value.strip('"'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head[:-4].split("\r\n")
    version, status, *_reason = status_line.split(" ", 2)
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        # Several Set-Cookie headers cannot be joined with commas (dates hold commas).
        joiner = "\n" if name == "set-cookie" else ", "
        headers[name] = f"{headers[name]}{joiner}{value}" if name in headers else value
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(int(status), headers, await _read_chunks(reader))
    if "content-length" in headers:
        length = int(headers["content-length"])
        return Response(int(status), headers, await reader.readexactly(length))
    if status in ("204", "304") or status.startswith("1"):
        return Response(int(status), headers, b"")
    headers["connection"] = "close"  # a body that ends with the connection
    return Response(int(status), headers, await reader.read())


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
