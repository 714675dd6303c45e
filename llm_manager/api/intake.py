"""The proxy's own request intake: ``POST /v1/...`` taken in without Tornado's RequestHandler machinery.

Every request of the gateway's hot path went through the Tornado application's routing (Panel's and
Bokeh's rules first), a RequestHandler and, for a body streamed in under a size limit, two more
event-loop turns before it could be sent upstream. Under load each turn waits for everything else that is
ready, so turns are what a new stream's first token waits on (``bench/RESULTS.md``). ``IntakeRouter`` sits
in front of the application on the same ``HTTPServer``: a ``POST`` under ``/v1/`` becomes an ``Exchange``
(an ``HTTPMessageDelegate``: the body is collected as it arrives and the handling task starts when it is
complete); any other request goes to the application unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import httputil
from tornado.log import access_log

from ..errors import LLMManagerError, Unavailable
from .guard import Refusal, RequestGuard, redact_uri

log = logging.getLogger("llm_manager.api")

JSON = "application/json"


def cors_headers(origins: Any, origin: str | None) -> dict[str, str]:
    """CORS answer headers for a request from ``origin`` (none when it is not an allowed origin)."""
    if not origin or not origins or ("*" not in origins and origin not in origins):
        return {}
    return {"Access-Control-Allow-Origin": "*" if "*" in origins else origin,
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS", "Vary": "Origin"}


class Exchange(httputil.HTTPMessageDelegate):
    """One request and its answer on a Tornado HTTP/1.1 connection, with the writing primitives a handler needs.

    Subclasses implement ``handle`` (a coroutine run once the whole body is in) and may check the
    request's head in ``check_head``; an ``LLMManagerError`` from either becomes its OpenAI-style JSON
    answer, anything else a logged 500 that shows no traceback.
    """

    def __init__(self, connection: httputil.HTTPConnection, cors_origins: Any, max_body: int):
        self.connection = connection
        self.cors_origins = cors_origins
        self.max_body = max_body
        self.request: httputil.HTTPServerRequest | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.status = 0
        self.headers_written = False
        self.finished = False
        self.client_left = False
        self.body_complete = False
        self.task: asyncio.Task | None = None

    # -- what Tornado's connection calls
    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.request = httputil.HTTPServerRequest(connection=self.connection, start_line=start_line, headers=headers)
        set_max = getattr(self.connection, "set_max_body_size", None)
        if set_max is not None:  # bodies over max_body are refused by us (413), not cut off by Tornado
            set_max(max(self.max_body * 4, 1 << 30))
        try:
            self.check_head(self.request)
        except LLMManagerError as exc:
            self.send_error(exc)  # at once: a body over the limit is not read (the connection closes after)

    def data_received(self, chunk: bytes) -> None:
        if self.finished:
            return
        self.size += len(chunk)
        if self.size <= self.max_body:
            self.chunks.append(chunk)
        else:
            self.chunks = []

    def finish(self) -> None:
        self.body_complete = True
        if self.finished:
            return
        self.task = asyncio.get_running_loop().create_task(self._run())

    def on_connection_close(self) -> None:
        if self.task is not None and not self.task.done():
            self.client_left = True
            self.task.cancel()  # the client left: whatever the handler awaits (the upstream) is cancelled too

    # -- for subclasses
    def check_head(self, request: httputil.HTTPServerRequest) -> None:
        """Refuse a request from its head alone (size, content type), before its body is read."""

    async def handle(self, body: bytes) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        try:
            await self.handle(b"".join(self.chunks))
        except LLMManagerError as exc:
            self.send_error(exc)
        except asyncio.CancelledError:
            if not self.client_left:  # the server is shutting down
                self.send_error(Unavailable("the server is shutting down"))
                raise
        except Exception:
            log.exception("error handling %s %s", self.method, self.path)
            self.send_error(LLMManagerError("internal error; see the server log"))
        finally:
            if not self.finished and not self.client_left:
                self.end()

    @property
    def method(self) -> str:
        return self.request.method if self.request is not None else ""

    @property
    def path(self) -> str:
        return self.request.path if self.request is not None else ""

    def start(self, status: int, headers: dict[str, str], first: bytes | None = None,
              streaming: bool = False) -> Awaitable[None]:
        """Send the status line and headers (with CORS ones when the origin is allowed), and ``first`` with them.

        ``streaming`` turns Nagle's algorithm off for this answer: each event must leave at once, not wait
        for the client's (delayed) acknowledgement of the one before. Tornado turns it back on at the end.
        """
        self.status = status
        self.headers_written = True
        assert self.request is not None
        out = httputil.HTTPHeaders(headers)
        for k, v in cors_headers(self.cors_origins, self.request.headers.get("Origin")).items():
            out[k] = v
        if streaming:
            stream = getattr(self.connection, "stream", None)
            if stream is not None:
                stream.set_nodelay(True)
        return self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses.get(status, "Unknown")), out, first)

    def write(self, data: bytes) -> Awaitable[None]:
        """Send a piece of the body; the result completes once it is handed to the socket (back-pressure)."""
        return self.connection.write(data)

    def end(self, data: bytes = b"") -> None:
        """Finish the answer (sending ``data`` last), and write the access log line."""
        if self.finished:
            return
        self.finished = True
        if not self.headers_written:
            self.start(self.status or 200, {"Content-Length": str(len(data))}, data)
        elif data:
            self.connection.write(data)
        self.connection.finish()
        self.log_access()

    def send_whole(self, status: int, content_type: str, data: bytes) -> None:
        """A complete answer in one write, with Content-Length."""
        self.start(status, {"Content-Type": content_type, "Content-Length": str(len(data))}, data)
        self.end()

    def send_error(self, exc: LLMManagerError) -> None:
        """The error as an OpenAI-style JSON answer; mid-answer, only the end of the answer."""
        if self.finished:
            return
        if self.headers_written:
            self.end()
            return
        data = self.error_body(exc)
        headers = {"Content-Type": JSON, "Content-Length": str(len(data)), **exc.headers}
        if not self.body_complete:  # answered from the head: Tornado drops the connection after, so say so
            headers["Connection"] = "close"
        self.start(exc.status, headers, data)
        self.end()

    def error_body(self, exc: LLMManagerError) -> bytes:
        """The error answer's body: OpenAI's shape unless a subclass speaks another protocol."""
        return json.dumps(exc.body()).encode()

    def log_access(self) -> None:
        """The line Tornado's application would log (``tornado.access``; see ``program.access_log``)."""
        if not access_log.isEnabledFor(logging.INFO if self.status < 400 else logging.WARNING):
            return
        assert self.request is not None
        level = logging.INFO if self.status < 400 else logging.WARNING if self.status < 500 else logging.ERROR
        access_log.log(level, "%d %s %s (%s) %.2fms", self.status, self.request.method,
                       redact_uri(self.request.uri or ""), self.request.remote_ip, 1000.0 * self.request.request_time())


class Refused(httputil.HTTPMessageDelegate):
    """A request the guard refused: its answer goes out from the head, the body (if any) is dropped."""

    def __init__(self, connection: httputil.HTTPConnection, refusal: Refusal):
        self.connection = connection
        self.refusal = refusal

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        data = json.dumps(self.refusal.body()).encode()
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", self.refusal.status, httputil.responses[self.refusal.status]),
            httputil.HTTPHeaders({"Content-Type": JSON, "Content-Length": str(len(data)), "Connection": "close"}),
            data)
        self.connection.finish()
        access_log.warning("%d %s %s (%s): %s", self.refusal.status, start_line.method, redact_uri(start_line.path),
                           getattr(self.connection, "context", None) and self.connection.context.remote_ip,
                           self.refusal.code)


class _Dispatch(httputil.HTTPMessageDelegate):
    """Decides per request, on its head, between an ``Exchange`` and the Tornado application."""

    __slots__ = ("router", "server_conn", "request_conn", "delegate")

    def __init__(self, router: IntakeRouter, server_conn: object, request_conn: httputil.HTTPConnection):
        self.router = router
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.delegate: httputil.HTTPMessageDelegate | None = None

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        refusal = self.router.guard.check(start_line.method, start_line.path, headers)
        if refusal is not None:
            self.delegate = Refused(self.request_conn, refusal)
            return self.delegate.headers_received(start_line, headers)
        factory = self.router.route(start_line)
        self.delegate = (factory(self.request_conn) if factory is not None
                         else self.router.app.start_request(self.server_conn, self.request_conn))
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        assert self.delegate is not None
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        assert self.delegate is not None
        self.delegate.finish()

    def on_connection_close(self) -> None:
        if self.delegate is not None:
            self.delegate.on_connection_close()


class IntakeRouter(httputil.HTTPServerConnectionDelegate):
    """In front of the Tornado application: the guard sees every request first; then ``route`` picks an
    ``Exchange`` factory for it, else None (the application takes it)."""

    def __init__(self, app: httputil.HTTPServerConnectionDelegate,
                 route: Callable[[httputil.RequestStartLine], Callable[[httputil.HTTPConnection], Exchange] | None],
                 guard: RequestGuard):
        self.app = app
        self.route = route
        self.guard = guard

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> _Dispatch:
        return _Dispatch(self, server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


def install(server: Any, route: Callable[[httputil.RequestStartLine],
                                          Callable[[httputil.HTTPConnection], Exchange] | None],
            guard: RequestGuard, header_timeout: float) -> None:
    """Put an ``IntakeRouter`` in front of a Bokeh/Panel server's Tornado application.

    ``header_timeout`` bounds how long a connection may take to send a request's head (and idle between
    requests): a client that never finishes its headers cannot hold a socket forever.
    """
    http = server._http  # the tornado HTTPServer of bokeh.server.server.Server
    http.request_callback = IntakeRouter(http.request_callback, route, guard)
    http.conn_params.header_timeout = header_timeout

