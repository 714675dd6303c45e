"""The gateway's httpx transport (``llm_manager.gateway.upstream``) against a scripted HTTP/1.1 server on loopback.

Each test's server answers with exact bytes, so framing, keep-alive, retries and failures are the
transport's doing, and every failure must surface as the httpx exception an httpx user expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from helpers import wait_until_async

from llm_manager.gateway.upstream import PooledTransport, make_client

Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class Scripted:
    """A loopback server: reads each request whole, lets ``answer`` reply; counts connections (opened and
    closed by the server) and requests."""

    def __init__(self, answer: Answer):
        self.answer = answer
        self.connections = 0
        self.closed = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/echo"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(request, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        writer.close()
        self.closed += 1


def fixed(data: bytes, keep: bool = True) -> Answer:
    async def answer(request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep
    return answer


def post(client: httpx.AsyncClient, url: str, body: bytes = b'{"x":1}', read: float = 5.0) -> Awaitable[httpx.Response]:
    return client.post(url, content=body, headers={"Content-Type": "application/json"},
                       timeout=httpx.Timeout(read, connect=2.0))


async def test_content_length_answer_and_keep_alive_reuse() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Upstream: yes\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
    async with Scripted(fixed(ok)) as srv, make_client() as client:
        first = await post(client, srv.url)
        second = await post(client, srv.url, b'{"second":true}')
    assert first.status_code == 200 and first.json() == {"ok": True}
    assert first.headers["x-upstream"] == "yes" and first.reason_phrase == "OK" and first.http_version == "HTTP/1.1"
    assert second.json() == {"ok": True}
    assert srv.connections == 1, "the second request should reuse the kept-alive connection"
    head, _, body = srv.requests[1].partition(b"\r\n\r\n")
    assert body == b'{"second":true}'
    assert b"content-length: 15" in head.lower() and b"host: 127.0.0.1:" in head.lower()
    assert srv.requests[0].startswith(b"POST /v1/echo HTTP/1.1\r\n")


async def test_chunked_answer_arrives_piece_by_piece() -> None:
    gate = asyncio.Event()

    async def answer(request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"b;ext=1\r\ndata: one\n\n\r\n")
        await writer.drain()
        await gate.wait()  # the second piece only once the client has seen the first
        writer.write(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async with Scripted(answer) as srv, make_client() as client:
        async with client.stream("POST", srv.url, content=b"{}") as resp:
            pieces = []
            async for piece in resp.aiter_raw():
                pieces.append(piece)
                gate.set()
        again = await post(client, srv.url)  # the connection went back to the pool after the last chunk
    assert pieces == [b"data: one\n\n", b"data: two\n\n"]
    assert again.status_code == 200 and srv.connections == 1


async def test_body_read_until_close_is_whole_and_not_reused() -> None:
    answer = fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 70_000, keep=False)
    async with Scripted(answer) as srv, make_client() as client:
        first = await post(client, srv.url)
        second = await post(client, srv.url)
    assert first.content == b"z" * 70_000 and second.content == b"z" * 70_000
    assert srv.connections == 2


async def test_connection_closed_while_idle_is_retried_once() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def answer_then_hang_up_later(request: bytes, reader: asyncio.StreamReader,
                                        writer: asyncio.StreamWriter) -> bool:
        writer.write(ok)
        await writer.drain()
        return len(srv.requests) > 1  # after the first answer the server drops the kept-alive connection

    async with Scripted(answer_then_hang_up_later) as srv, make_client() as client:
        assert (await post(client, srv.url)).text == "ok"
        assert await wait_until_async(lambda: srv.closed == 1)  # the kept-alive connection is closed while idle
        assert (await post(client, srv.url)).text == "ok"
    assert srv.connections == 2 and len(srv.requests) == 2


async def test_a_silent_upstream_is_a_read_timeout() -> None:
    async def never(request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)  # a silent upstream: the sleep is the behaviour under test
        return False

    async with Scripted(never) as srv, make_client() as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await post(client, srv.url, read=0.3)
        assert loop.time() - t0 < 2.0  # one sweep interval (0.5 s) past the timeout at most


async def test_a_stream_that_stops_is_a_read_timeout_mid_body() -> None:
    async def stall(request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(30)  # an upstream that stops mid-body: the sleep is the behaviour under test
        return False

    async with Scripted(stall) as srv, make_client() as client:
        async with client.stream("POST", srv.url, content=b"{}", timeout=httpx.Timeout(0.3)) as resp:
            got = b""
            with pytest.raises(httpx.ReadTimeout):
                async for piece in resp.aiter_raw():
                    got += piece
    assert got == b"partial"


async def test_refused_connection_and_early_close_and_malformed_answers() -> None:
    async with Scripted(fixed(b"")) as srv:
        url = srv.url
    async with make_client() as client:
        with pytest.raises(httpx.ConnectError):
            await post(client, url)  # nobody listens there any more
    async with Scripted(fixed(b"", keep=False)) as srv, make_client() as client:
        with pytest.raises(httpx.ReadError):
            await post(client, srv.url)  # closed without answering
    async with Scripted(fixed(b"SMTP ready\r\n\r\n")) as srv, make_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed status line"):
            await post(client, srv.url)
    bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    async with Scripted(fixed(bad_chunk)) as srv, make_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="chunked"):
            await post(client, srv.url)


async def test_interim_100_continue_is_skipped_and_https_is_refused() -> None:
    answer = fixed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    async with Scripted(answer) as srv, make_client() as client:
        resp = await post(client, srv.url)
    assert resp.status_code == 201 and resp.content == b""
    async with httpx.AsyncClient(transport=PooledTransport()) as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("https://127.0.0.1:1/")


async def test_upstream_cookies_are_not_kept_for_later_requests() -> None:
    answer = fixed(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=alice; Path=/\r\nContent-Length: 0\r\n\r\n")
    async with Scripted(answer) as srv, make_client() as client:
        await post(client, srv.url)
        await post(client, srv.url)
    assert all(b"cookie" not in r.lower() for r in srv.requests), "one user's cookie reached another's request"
