"""bench/lean_http.py, the load driver's HTTP client, against a real socket server in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.lean_http import LeanClient, LeanHTTPError

Reply = Callable[[bytes], bytes]


async def _serve(replies: list[bytes], seen: list[bytes], close_after_each: bool) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while replies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                ),
                0,
            )
            seen.append(head + await reader.readexactly(length))
            writer.write(replies.pop(0))
            await writer.drain()
            if close_after_each:
                break
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(
    replies: list[bytes], requests: Callable[[LeanClient], object], close: bool = False
) -> list[bytes]:
    seen: list[bytes] = []

    async def main() -> None:
        server = await _serve(replies, seen, close)
        port = server.sockets[0].getsockname()[1]
        client = LeanClient(f"http://127.0.0.1:{port}", timeout=5)
        try:
            await requests(client)  # type: ignore[misc]
        finally:
            await client.aclose()
            server.close()

    # In a thread of its own: an earlier test in the session may leave this thread's loop running.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()
    return seen


def test_cookies_forms_and_both_body_framings() -> None:
    replies = [
        b"HTTP/1.1 303 See Other\r\nLocation: /rate\r\nSet-Cookie: s=abc; Path=/; HttpOnly\r\n"
        b"Set-Cookie: t=1; Path=/\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b'HTTP/1.1 200 OK\r\nSet-Cookie: s=""; Max-Age=0; Path=/\r\nContent-Length: 2\r\n\r\nok',
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ]
    got: list[object] = []

    async def requests(client: LeanClient) -> None:
        signed = await client.post("/invite", data={"token": "a b&c"})
        got.append((signed.status_code, signed.headers["location"], dict(client.cookies)))
        got.append((await client.get("/rate")).text)
        await client.post("/logout", data={})
        got.append(dict(client.cookies))
        await client.get("/after")

    seen = _run(replies, requests)
    assert got == [(303, "/rate", {"s": "abc", "t": "1"}), "hello world", {"t": "1"}]
    assert seen[0].endswith(b"\r\n\r\ntoken=a+b%26c") and b"Content-Length: 13" in seen[0]
    assert b"Cookie: s=abc; t=1" in seen[1]
    assert b"Cookie: t=1\r\n" in seen[3]  # the deleted cookie is not sent again


def test_a_connection_the_server_closed_is_replaced() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    statuses: list[int] = []

    async def requests(client: LeanClient) -> None:
        for _ in range(3):
            statuses.append((await client.get("/")).status_code)
            await asyncio.sleep(0.05)  # the server's close reaches the client's reader

    assert len(_run([ok, ok, ok], requests, close=True)) == 3
    assert statuses == [200, 200, 200]


def test_garbage_is_a_transport_error() -> None:
    async def requests(client: LeanClient) -> None:
        with pytest.raises(LeanHTTPError):
            await client.get("/")

    _run([b"SSH-2.0-OpenSSH\r\n\r\n"], requests)
