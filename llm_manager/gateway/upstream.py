"""httpx to upstreams, through a pooled HTTP/1.1 transport on ``asyncio.Protocol``.

The gateway talks to model servers with ``httpx.AsyncClient``; what it swaps is httpx's default transport
(httpcore), through httpx's own extension point (``AsyncClient(transport=...)``). Measured in
``bench/RESULTS.md``: httpcore's pool walks every pooled connection on each request, which cost more CPU
than the rest of the gateway together and collapsed at 64 concurrent requests. ``PooledTransport`` keeps
keep-alive connections per upstream in O(1) and speaks what model servers answer with: ``Content-Length``,
chunked and read-to-close bodies, back-pressure. Its failures are httpx's exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from .upstream_pool import Answer, Broken, ConnectTimeout, UpstreamPool, exchange


def _httpx_error(exc: BaseException, request: httpx.Request) -> Exception:
    """The httpx exception a caller of ``httpx.AsyncClient`` expects for a failure down here."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectTimeout):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, asyncio.TimeoutError):  # (before OSError: TimeoutError is one since Python 3.11)
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, OSError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, Broken) and exc.malformed:
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)


class _Body(httpx.AsyncByteStream):
    """An upstream answer's body as httpx reads it: each piece as soon as it arrives."""

    def __init__(self, answer: Answer, request: httpx.Request):
        self.answer = answer
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read_some = self.answer.read_some
        try:
            while piece := await read_some():
                yield piece
        except (Broken, OSError, asyncio.TimeoutError) as exc:
            raise _httpx_error(exc, self.request) from exc

    async def aclose(self) -> None:
        self.answer.close()  # to the pool when read whole on a kept-alive connection, else closed


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx transport for plain-HTTP upstreams: O(1) keep-alive pool, one retry of a connection that died idle.

    Timeouts come from the request's ``timeout`` extension as httpx sets them: ``connect`` for opening a
    connection, ``read`` for the longest the upstream may stay silent while an answer is awaited.
    """

    def __init__(self, max_idle: int = 1024, idle_expiry: float = 30.0):
        self.pool = UpstreamPool(max_idle=max_idle, idle_expiry=idle_expiry)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"upstreams are plain HTTP, not {url.scheme!r}: {url}", request=request)
        timeouts = request.extensions.get("timeout") or {}
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for k, v in request.headers.raw:
            head += (k, b": ", v, b"\r\n")
        head += (b"\r\n", body)
        key = (url.host, url.port or 80)
        try:
            answer_head, answer = await exchange(self.pool, key, b"".join(head), timeouts.get("read") or 3600.0,
                                                  timeouts.get("connect") or 5.0)
        except (Broken, OSError, asyncio.TimeoutError) as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(answer_head.status, headers=answer_head.raw, stream=_Body(answer, request),
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer_head.reason})

    async def aclose(self) -> None:
        await self.pool.aclose()


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class UpstreamClient(httpx.AsyncClient):
    """httpx's AsyncClient, less its cookie store: one client serves every user, so an upstream's
    ``Set-Cookie`` must not ride along on other users' requests (and not parsing it spares ~15 µs a request)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value: object) -> None:
        raise AttributeError("the upstream client keeps no cookies")


_NO_COOKIES = _NoCookies()


def make_client() -> httpx.AsyncClient:
    """The gateway's httpx client for every upstream (loopback model servers: no proxy settings apply)."""
    return UpstreamClient(transport=PooledTransport(), trust_env=False, timeout=httpx.Timeout(600.0, connect=5.0))


def make_remote_client() -> httpx.AsyncClient:
    """The client for remote upstreams (``upstreams`` in the config): https and the environment's proxy settings
    apply, unlike on loopback."""
    return UpstreamClient(trust_env=True, timeout=httpx.Timeout(600.0, connect=5.0))
