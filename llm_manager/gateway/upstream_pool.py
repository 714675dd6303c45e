"""Keep-alive HTTP/1.1 connections to upstream model servers, on ``asyncio.Protocol``: the pool and the framing.

What ``upstream.PooledTransport`` (httpx's side) stands on. Model servers answer with ``Content-Length``,
chunked or read-to-close bodies; a connection is reused LIFO per (host, port), found in O(1), and an
upstream that runs ahead of its client is paused (back-pressure). Failures are ``Broken`` (the
connection closed or broke the protocol), ``ConnectTimeout``/``OSError`` (connecting) or ``TimeoutError``
(the upstream stayed silent longer than the request's read timeout).
"""

from __future__ import annotations

import asyncio
import time

HIGH_WATER = 1 << 20  # stop reading an upstream that is this far ahead of its client
MAX_HEAD = 1 << 16


class Broken(Exception):
    """The upstream connection closed (``fresh``: before any byte of the answer) or broke the protocol."""

    def __init__(self, message: str, fresh: bool = False, malformed: bool = False):
        super().__init__(message)
        self.fresh = fresh
        self.malformed = malformed


class ConnectTimeout(OSError):
    """Opening a connection to the upstream took longer than the connect timeout."""


class _Conn(asyncio.Protocol):
    """One upstream connection: bytes in a buffer, one waiter woken when more arrive or it closes."""

    __slots__ = ("pool", "key", "transport", "buf", "waiter", "closed", "paused", "idle_since", "active", "timed_out",
                 "timeout", "waiting_since", "received")

    def __init__(self, pool: UpstreamPool, key: tuple[str, int]):
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.active = False
        self.timed_out = False
        self.timeout = 0.0  # seconds the upstream may stay silent while we wait for it
        self.waiting_since = 0.0
        self.received = 0  # bytes of the current answer

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.received += len(data)
        if len(self.buf) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if not self.active:
            self.pool._forget(self)

    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    # -- used by UpstreamResponse
    async def more(self) -> None:
        """Wait until more bytes arrive; raises Broken when the connection has closed."""
        if self.closed:
            if self.timed_out:
                raise asyncio.TimeoutError("the upstream stayed silent longer than the read timeout")
            raise Broken("upstream closed the connection", fresh=self.received == 0)
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        fut = self.pool.loop.create_future()
        self.waiter = fut
        self.waiting_since = time.monotonic()
        await fut
        if self.timed_out:
            raise asyncio.TimeoutError("the upstream stayed silent longer than the read timeout")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections per upstream (host, port), most recently used first.

    Timeouts cost no timer per request: while any connection is in use, one sweep every
    ``SWEEP`` seconds aborts those whose upstream has been silent longer than their timeout.
    """

    SWEEP = 0.5

    def __init__(self, max_idle: int = 1024, idle_expiry: float = 30.0):
        self.max_idle = max_idle
        self.idle_expiry = idle_expiry
        self._idle: dict[tuple[str, int], dict[_Conn, None]] = {}  # insertion-ordered: LIFO reuse, O(1) removal
        self._active: set[_Conn] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _use(self, conn: _Conn, timeout: float) -> None:
        conn.active = True
        conn.timeout = timeout
        conn.timed_out = False
        conn.received = 0
        self._active.add(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.SWEEP, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._active if c.waiter is not None and now - c.waiting_since >= c.timeout]:
            conn.timed_out = True
            conn._wake()
            conn.close()
        self._sweeper = (self.loop.call_later(self.SWEEP, self._sweep)
                         if self._active and not self._closed else None)

    async def _connect(self, key: tuple[str, int], connect_timeout: float) -> _Conn:
        self._loop = loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(lambda: _Conn(self, key), key[0], key[1]),
                                             connect_timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"no connection to {key[0]}:{key[1]} within {connect_timeout:g} s") from None
        return conn  # type: ignore[return-value]

    async def acquire(self, key: tuple[str, int], timeout: float, connect_timeout: float) -> tuple[_Conn, bool]:
        """A connection to ``key`` and whether it was reused from the pool."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.popitem()[0]
            if conn.closed or conn.buf or now - conn.idle_since > self.idle_expiry:  # buf: it spoke while idle
                conn.close()
                continue
            self._use(conn, timeout)
            return conn, True
        conn = await self._connect(key, connect_timeout)
        self._use(conn, timeout)
        return conn, False

    def release(self, conn: _Conn, reusable: bool) -> None:
        conn.active = False
        self._active.discard(conn)
        if not reusable or conn.closed or self._closed or conn.buf:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, {})
        if len(idle) >= self.max_idle:
            oldest = next(iter(idle))
            del idle[oldest]
            oldest.close()
        conn.idle_since = time.monotonic()
        idle[conn] = None

    def _forget(self, conn: _Conn) -> None:
        idle = self._idle.get(conn.key)
        if idle:
            idle.pop(conn, None)

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in list(idle):
                conn.close()
        self._idle.clear()


class Answer:
    """The framing of one upstream answer: its body read as it arrives, then the connection given back."""

    def __init__(self, pool: UpstreamPool, conn: _Conn, status: int, headers: dict[bytes, bytes], keep_alive: bool):
        self.pool = pool
        self.conn: _Conn | None = conn
        self.status = status
        te = headers.get(b"transfer-encoding", b"").lower()
        self.chunked = b"chunked" in te
        cl = headers.get(b"content-length")
        self.remaining = int(cl) if cl is not None and not self.chunked else -1
        self.until_close = not self.chunked and self.remaining < 0
        self.keep_alive = keep_alive and not self.until_close
        self.chunk_left = 0  # bytes left in the current chunk (chunked coding)
        self.done = self.remaining == 0 or status in (204, 304)

    async def read_some(self) -> bytes:
        """The next piece of the body as soon as any of it is here; b"" once the body is complete."""
        conn = self.conn
        if self.done or conn is None:
            return b""
        buf = conn.buf
        while True:
            if self.chunked:
                piece = self._decode_chunked(buf)
                if piece or self.done:
                    return piece
            elif self.remaining > 0:
                if buf:
                    n = min(len(buf), self.remaining)
                    piece = bytes(buf[:n])
                    del buf[:n]
                    self.remaining -= n
                    self.done = self.remaining == 0
                    return piece
            else:  # until the upstream closes
                if buf:
                    piece = bytes(buf)
                    buf.clear()
                    return piece
                if conn.closed:
                    self.done = True
                    return b""
            try:
                await conn.more()
            except Broken:
                if self.until_close:
                    self.done = True
                    return bytes(buf)
                raise

    def _decode_chunked(self, buf: bytearray) -> bytes:
        out: list[bytes] = []
        while buf:
            if self.chunk_left > 0:
                n = min(len(buf), self.chunk_left)
                out.append(bytes(buf[:n]))
                del buf[:n]
                self.chunk_left -= n
                if self.chunk_left == 0:
                    self.chunk_left = -2  # the CRLF after the chunk data
                continue
            if self.chunk_left == -2:
                if len(buf) < 2:
                    break
                del buf[:2]
                self.chunk_left = 0
                continue
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > 1024:
                    raise Broken("malformed chunked encoding from upstream", malformed=True)
                break
            try:
                size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            except ValueError:
                raise Broken("malformed chunked encoding from upstream", malformed=True) from None
            if size == 0:  # last chunk: wait for the (empty) trailer section's CRLF
                end = buf.find(b"\r\n\r\n", eol) if len(buf) > eol + 2 else -1
                if buf[eol:eol + 4] == b"\r\n\r\n":
                    del buf[:eol + 4]
                elif end >= 0:
                    del buf[:end + 4]
                else:
                    break
                self.done = True
                break
            del buf[:eol + 2]
            self.chunk_left = size
        return b"".join(out) if len(out) != 1 else out[0]

    def close(self) -> None:
        """Back to the pool when the answer was read whole and the upstream keeps the connection."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool.release(conn, self.keep_alive and self.done)


class Head:
    """An answer's status line and header section."""

    __slots__ = ("status", "reason", "raw", "headers", "keep_alive")

    def __init__(self, head: bytes):
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise Broken(f"upstream sent a malformed status line: {lines[0][:80]!r}", malformed=True)
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else b""
        self.raw: list[tuple[bytes, bytes]] = []  # as sent, for httpx.Response
        self.headers: dict[bytes, bytes] = {}  # lower-cased, for the framing
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k, v = k.strip(), v.strip()
            self.raw.append((k, v))
            self.headers[k.lower()] = v
        conn_hdr = self.headers.get(b"connection", b"").lower()
        self.keep_alive = b"close" not in conn_hdr if parts[0] == b"HTTP/1.1" else b"keep-alive" in conn_hdr


async def exchange(pool: UpstreamPool, key: tuple[str, int], request: bytes, timeout: float,
                    connect_timeout: float) -> tuple[Head, Answer]:
    """Send one request and read the answer's head; a reused connection that died idle is retried once.

    Raises OSError (``ConnectTimeout`` included) only while connecting; Broken or TimeoutError after.
    """
    for attempt in (0, 1):
        conn, reused = await pool.acquire(key, timeout, connect_timeout)
        try:
            assert conn.transport is not None
            conn.transport.write(request)
            buf = conn.buf
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = Head(bytes(buf[:end]))
                    del buf[:end + 4]
                    if 100 <= head.status < 200:  # interim answer (100 Continue): the real one follows
                        continue
                    return head, Answer(pool, conn, head.status, head.headers, head.keep_alive)
                if len(buf) > MAX_HEAD:
                    raise Broken("upstream sent an oversized header section", malformed=True)
                await conn.more()
        except Broken as exc:
            pool.release(conn, False)
            if reused and exc.fresh and attempt == 0:
                continue  # the kept-alive connection was closed by the upstream meanwhile
            raise
        except BaseException:
            pool.release(conn, False)
            raise
    raise Broken("unreachable")  # pragma: no cover
