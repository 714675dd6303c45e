"""The OpenAI-compatible surface: /v1/models and every endpoint an interface plugin serves.

A ``POST /v1/...`` is taken in by ``intake`` (not a Tornado RequestHandler: the hot path) and checked
here (size, content type, JSON, model, endpoint for the mode); then ``Manager.lease`` starts the model
if needed and ``proxy.forward`` relays the answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

import tornado.iostream
from tornado import httputil

from ..errors import (
    BadRequest,
    LLMManagerError,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ..manager import Manager
from ..proxy import Outcome, forward, prepare_stream_body
from ..usage.record import UsageRecord
from .base import BaseHandler, json_object, log
from .intake import Exchange

STREAMABLE = {"v1/chat/completions", "v1/completions"}


class ModelsHandler(BaseHandler):
    """GET /v1/models (and /v1/models/{id}): every model and alias, with its state (a scoped key sees its own)."""

    def get(self, model_id: str | None = None) -> None:
        key = self.manager.authorize_request(self, None)
        allowed = self._allowed(key)
        created = int(self.manager.started_at)
        if model_id:
            if allowed is not None and self._canonical(model_id) not in allowed:
                raise ModelNotFound(f"model {model_id!r} not found", param="model")
            info = self.manager.model_info(model_id)
            self.write_json(_model_obj(info["name"], created, info))
            return
        data = []
        for info in self.manager.models_info():
            if allowed is not None and info["name"] not in allowed:
                continue
            data.append(_model_obj(info["name"], created, info))
            data.extend(_model_obj(alias, created, info, parent=info["name"]) for alias in info["aliases"]
                        if alias != info["name"])
        self.write_json({"object": "list", "data": data})

    def _canonical(self, name: str) -> str | None:
        try:
            return self.manager.resolve(name).name
        except LLMManagerError:
            return None

    def _allowed(self, key: Any) -> set[str] | None:
        """The model names a key scoped to some models (by name or alias) may use; None: all of them."""
        models = getattr(key, "models", None)
        if not models:
            return None
        return {n for n in map(self._canonical, models) if n is not None}


def _model_obj(model_id: str, created: int, info: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "llm-manager",
            "mode": info["mode"], "state": info["state"], **({"parent": parent} if parent else {})}


class V1OtherHandler(BaseHandler):
    """``/v1/...`` requests that are not POSTs (those go to ``ProxyExchange``): CORS preflights; 405 on an
    endpoint, 404 elsewhere."""

    def prepare(self) -> None:
        if self.request.method != "OPTIONS" and self.request.path.strip("/") not in ENDPOINTS.table(self.manager):
            raise NotFound(f"no route for {self.request.method} {self.request.path}")


class EndpointTable:
    """Every path the loaded interface plugins serve (their endpoints and aliases, such as ``v2/rerank``),
    mapped to the endpoint it is forwarded and counted as. Rebuilt when the plugins are reloaded."""

    def __init__(self) -> None:
        self._source: object = None
        self._table: dict[str, str] = {}

    def table(self, manager: Manager) -> dict[str, str]:
        interfaces = manager.interfaces
        if interfaces is not self._source:  # reloading the plugins replaces the dict
            table: dict[str, str] = {}
            for iface in list(interfaces.values()):
                try:
                    table.update((e.strip("/"), e.strip("/")) for e in iface.get_supported_endpoints())
                    aliases = getattr(iface, "get_endpoint_aliases", dict)()
                    table.update((a.strip("/"), e.strip("/")) for a, e in aliases.items() if a.strip("/") not in table)
                except Exception:  # a broken plugin: its endpoints are not served, the others are
                    log.exception("interface plugin %r: listing its endpoints failed", iface)
            self._source, self._table = interfaces, table
        return self._table


ENDPOINTS = EndpointTable()

# The common numeric fields of OpenAI requests: field -> (integer?, minimum, maximum); None is no bound.
# max_tokens -1 is llama-server's "no limit"; 0 is legacy completions with echo scoring a prompt.
NUMERIC_FIELDS: dict[str, tuple[bool, float | None, float | None]] = {
    "max_tokens": (True, -1, None), "max_completion_tokens": (True, 1, None), "n": (True, 1, None),
    "temperature": (False, 0, 2), "top_p": (False, 0, 1), "presence_penalty": (False, -2, 2),
    "frequency_penalty": (False, -2, 2), "seed": (True, None, None), "top_k": (True, -1, None),
    "top_logprobs": (True, 0, 20),
}


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)[:40]


def check_fields(body: dict[str, Any]) -> None:
    """400 naming the field (``param``) for a common field of the wrong type or out of range.

    Upstreams ignore some of these (a negative max_tokens) or refuse them in their own error shape.
    On the hot path: a dozen dict lookups; absent and null fields are skipped.
    """
    for name, (integer, low, high) in NUMERIC_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if (type(value) is bool or not isinstance(value, (int, float))
                or (isinstance(value, float) and (not math.isfinite(value) or (integer and not value.is_integer())))):
            raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'}, got {_shown(value)}",
                             param=name)
        if (low is not None and value < low) or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if low is not None and high is not None else (
                f">= {low:g}" if low is not None else f"<= {high:g}")
            if name == "max_tokens":
                bound = ">= 0 (or -1: no limit)"
            raise BadRequest(f"{name} must be {bound}, got {_shown(value)}", param=name)
    stream = body.get("stream")
    if stream is not None and type(stream) is not bool:
        raise BadRequest(f"stream must be true or false, got {_shown(stream)}", param="stream")
    logprobs = body.get("logprobs")
    if logprobs is not None and type(logprobs) is not bool and (type(logprobs) is not int or logprobs < 0):
        raise BadRequest("logprobs must be a boolean (chat) or an integer >= 0 (completions), "
                         f"got {_shown(logprobs)}", param="logprobs")


def route_v1(manager: Manager) -> Callable[[httputil.RequestStartLine], Callable[..., Exchange] | None]:
    """The intake's route: every ``POST /v1/...`` but ``/v1/models`` becomes a ``ProxyExchange``, and so does a
    POST to a plugin's endpoint alias outside /v1 (``/v2/rerank``)."""

    def make(connection: httputil.HTTPConnection) -> Exchange:
        return ProxyExchange(manager, connection)

    def route(start_line: httputil.RequestStartLine) -> Callable[..., Exchange] | None:
        if start_line.method != "POST":
            return None
        path = start_line.path
        if path.startswith("/v1/"):
            return None if path.startswith("/v1/models") else make
        return make if path.partition("?")[0].strip("/") in ENDPOINTS.table(manager) else None

    return route


class ProxyExchange(Exchange):
    """POST /v1/...: validate, lease the model (cold start, queueing), forward, count."""

    def __init__(self, manager: Manager, connection: httputil.HTTPConnection):
        program = manager.config.program
        super().__init__(connection, program.cors_origins, int(program.max_body_mb * 1024 * 1024))
        self.manager = manager
        self.t0 = time.monotonic()
        self.outcome: Outcome | None = None

    def check_head(self, request: httputil.HTTPServerRequest) -> None:
        length = request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.max_body:
            raise PayloadTooLarge(f"request body of {int(length)} bytes is over the limit of {self.max_body} bytes "
                                  "(program.max_body_mb)")
        ctype = request.headers.get("Content-Type", "")
        if ctype and "json" not in ctype.lower():
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {ctype}")

    async def handle(self, raw: bytes) -> None:
        if self.size > self.max_body:
            raise PayloadTooLarge(f"request body is over the limit of {self.max_body} bytes (program.max_body_mb)")
        request = self.request
        assert request is not None
        endpoint = ENDPOINTS.table(self.manager).get(self.path.strip("/"))
        if endpoint is None:  # before the body is looked at: no model makes an unknown path exist
            raise NotFound(f"no endpoint {self.method} {self.path}; served: "
                           + ", ".join("/" + e for e in sorted(ENDPOINTS.table(self.manager))))
        body = json_object(raw)
        name = body.get("model")
        if name is None:
            raise BadRequest("missing required field: model", param="model")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"model must be a non-empty string (a model name or alias), got {_shown(name)}",
                             param="model")
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
        check_fields(body)
        stream = body.get("stream") is True
        self.manager.check_budget(key, model.name)
        rec = UsageRecord(model=model.name, endpoint=endpoint.removeprefix("v1/"), status=0, alias=name,
                          key_id=getattr(key, "id", None), client_ip=request.remote_ip or "", stream=stream)
        try:
            await self._proxy(model, endpoint, body, raw, stream, rec)
        except LLMManagerError as exc:
            rec.status, rec.error = exc.status, exc.message
            if self.headers_written:  # mid-stream: tell the client in-band, then end
                self._end_stream_with_error(exc)
            else:
                raise
        except asyncio.CancelledError:
            out = self.outcome
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
            status_ctype: list[Any] = []

            def on_headers(status: int, ctype: str) -> None:
                status_ctype[:] = [status, ctype]

            async def write(data: bytes) -> None:
                try:
                    if self.headers_written:
                        await self.write(data)
                    else:  # a stream: its head goes out with its first event, in one packet
                        await self.start(status_ctype[0], {"Content-Type": status_ctype[1],
                                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                                         data, streaming=True)
                except tornado.iostream.StreamClosedError:
                    raise asyncio.CancelledError() from None

            out = self.outcome = Outcome()
            await forward(self.manager.http, url, content, stream, model.request_timeout, on_headers, write,
                          hide_usage, out, name=f"model {model.name}")
            if out.body is not None:  # a whole answer: one write with Content-Length, not chunked pieces
                self.send_whole(status_ctype[0], status_ctype[1], out.body)
            elif not self.headers_written:  # a stream that sent no event at all
                self.start(status_ctype[0], {"Content-Type": status_ctype[1], "Cache-Control": "no-cache"})
        self._account(rec, out, raw, stream, model)
        self.end()

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
        log.warning("stream to %s broke off: %s", self.request.remote_ip if self.request else "?", exc.message)
        if not self.finished:
            self.write(f"data: {json.dumps(exc.body())}\n\n".encode())
            self.end()
