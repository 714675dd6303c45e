"""The OpenAI-compatible surface: /v1/models and every endpoint an interface plugin serves.

A request is parsed and checked here (size, content type, JSON, model, endpoint for the mode),
then ``Manager.lease`` starts the model if needed and ``proxy.forward`` relays the answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import tornado.iostream
import tornado.web

from ..errors import BadRequest, LLMManagerError, PayloadTooLarge, UnsupportedMediaType
from ..proxy import Outcome, forward, prepare_stream_body
from ..usage.record import UsageRecord
from .base import BaseHandler, log

STREAMABLE = {"v1/chat/completions", "v1/completions"}


class ModelsHandler(BaseHandler):
    """GET /v1/models (and /v1/models/{id}): every model and alias, with its state."""

    def get(self, model_id: str | None = None) -> None:
        self.manager.authorize_request(self, None)
        created = int(self.manager.started_at)
        if model_id:
            info = self.manager.model_info(model_id)
            self.write_json(_model_obj(info["name"], created, info))
            return
        data = []
        for info in self.manager.models_info():
            data.append(_model_obj(info["name"], created, info))
            data.extend(_model_obj(alias, created, info, parent=info["name"]) for alias in info["aliases"]
                        if alias != info["name"])
        self.write_json({"object": "list", "data": data})


def _model_obj(model_id: str, created: int, info: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "llm-manager",
            "mode": info["mode"], "state": info["state"], **({"parent": parent} if parent else {})}


@tornado.web.stream_request_body
class ProxyHandler(BaseHandler):
    """POST /v1/...: validate, lease the model (cold start, queueing), forward, count."""

    _task: asyncio.Task | None = None
    _client_left = False
    _outcome: Outcome | None = None

    def prepare(self) -> None:
        self.t0 = time.monotonic()
        self._chunks: list[bytes] = []
        self._size = 0
        self.limit = int(self.manager.config.program.max_body_mb * 1024 * 1024)
        self._too_large = False
        self.request.connection.set_max_body_size(max(self.limit * 4, 1 << 30))
        if self.request.method != "POST":
            return
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.limit:
            raise PayloadTooLarge(f"request body of {int(length)} bytes is over the limit of {self.limit} bytes "
                                  "(program.max_body_mb)")
        ctype = self.request.headers.get("Content-Type", "")
        if ctype and "json" not in ctype.lower():
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {ctype}")

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.limit:
            self._too_large = True
            self._chunks = []
        elif not self._too_large:
            self._chunks.append(chunk)

    def on_connection_close(self) -> None:
        if self._task is not None and not self._task.done():
            self._client_left = True
            self._task.cancel()  # the client left: stop the upstream request too

    async def post(self, endpoint: str) -> None:
        if self._too_large:
            raise PayloadTooLarge(f"request body is over the limit of {self.limit} bytes (program.max_body_mb)")
        # Tornado already runs each request in a task of its own: cancelling that one when the client leaves
        # spares a second task (and an event-loop turn) per request.
        self._task = asyncio.current_task()
        try:
            await self._handle(endpoint.strip("/"))
        except asyncio.CancelledError:
            if not self._client_left:
                raise
            uncancel = getattr(self._task, "uncancel", None)  # Python 3.11+: the cancellation is handled
            if uncancel is not None:
                uncancel()
        finally:
            self._task = None

    async def _handle(self, endpoint: str) -> None:
        raw = b"".join(self._chunks)
        self.request.body = raw
        body = self.json_body()
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise BadRequest("missing required field: model", param="model")
        key = self.manager.authorize_request(self, name)
        model = self.manager.resolve(name)
        iface = self.manager.interfaces.get(model.mode)
        if iface is None:
            raise BadRequest(f"model {model.name} has mode {model.mode}, for which no interface plugin is loaded")
        ok, message = iface.validate_request(endpoint, model.name)
        if not ok:
            raise BadRequest(message, param="model")
        problem = iface.validate_body(endpoint, body)
        if problem:
            raise BadRequest(problem, param=problem.split(":")[0])
        stream = body.get("stream") is True
        self.manager.check_budget(key, model.name)
        rec = UsageRecord(model=model.name, endpoint=endpoint.removeprefix("v1/"), status=0, alias=name,
                          key_id=getattr(key, "id", None), client_ip=self.request.remote_ip or "", stream=stream)
        try:
            await self._proxy(model, endpoint, body, raw, stream, rec)
        except LLMManagerError as exc:
            rec.status, rec.error = exc.status, exc.message
            if self._headers_written:  # mid-stream: tell the client in-band, then end
                self._end_stream_with_error(exc)
            else:
                raise
        except asyncio.CancelledError:
            out = self._outcome
            if out is not None and out.done:  # the client had the whole answer and hung up: a success
                self._account(rec, out, raw, stream, model)
            else:
                rec.status, rec.error = 499, "client closed the connection"
            raise
        finally:
            rec.total_ms = (time.monotonic() - self.t0) * 1000
            self.manager.finish_usage(rec, model, raw)

    async def _proxy(self, model: Any, endpoint: str, body: dict[str, Any], raw: bytes, stream: bool,
                     rec: UsageRecord) -> None:
        tracked = model.mode in self.manager.config.program.token_tracker
        content, hide_usage = raw, False
        if stream and tracked and endpoint in STREAMABLE:
            content, wanted = prepare_stream_body(body, raw)
            hide_usage = not wanted
        async with self.manager.lease(model.name) as (sup, timings):
            rec.start_ms, rec.queue_ms = timings["start_ms"], timings["queue_ms"]
            url = f"http://127.0.0.1:{sup.model.port}/{endpoint}"

            def on_headers(status: int, ctype: str) -> None:
                self.set_status(status)
                self.set_header("Content-Type", ctype)
                if "text/event-stream" in ctype:
                    self.set_header("Cache-Control", "no-cache")
                    self.set_header("X-Accel-Buffering", "no")

            async def write(data: bytes) -> None:
                self.write(data)
                try:
                    await self.flush()
                except tornado.iostream.StreamClosedError:
                    raise asyncio.CancelledError() from None

            out = self._outcome = Outcome()
            await forward(self.manager.http, url, content, stream, model.request_timeout, on_headers, write,
                          hide_usage, out)
            if out.body is not None:  # a whole answer: one write with Content-Length, not chunked pieces
                self.finish(out.body)
        self._account(rec, out, raw, stream, model)
        if not self._finished:
            self.finish()

    def _account(self, rec: UsageRecord, out: Outcome, raw: bytes, stream: bool, model: Any) -> None:
        """Fill the usage record from what the relay saw; estimate tokens when the upstream gave none."""
        rec.status = out.status
        rec.error = out.error
        if out.first_byte is not None:
            rec.ttft_ms = (out.first_byte - self.t0) * 1000
        if out.prompt_tokens is not None:
            rec.prompt_tokens, rec.completion_tokens = out.prompt_tokens, out.completion_tokens or 0
        elif out.status == 200 and model.mode in self.manager.config.program.token_tracker:
            rec.estimated = True
            rec.prompt_tokens = max(1, len(raw) // 4)
            rec.completion_tokens = out.stream_events if stream else max(0, out.text_chars // 4)

    def _end_stream_with_error(self, exc: LLMManagerError) -> None:
        log.warning("stream to %s broke off: %s", self.request.remote_ip, exc.message)
        if not self._finished:
            with_error = json.dumps(exc.body())
            self.write(f"data: {with_error}\n\n".encode())
            self.finish()
