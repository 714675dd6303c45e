"""The OpenAI-compatible surface on the wire: /v1/models, and every endpoint an interface plugin serves.

A ``POST /v1/...`` is taken in by ``intake`` (not a Tornado RequestHandler: the hot path); here only its
size and content type are checked before its bytes become a ``pipeline.Call``; the pipeline decides
everything else and writes its answer back through ``ProxyExchange`` (a ``pipeline.Reply``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import tornado.iostream
from tornado import httputil

from ..errors import (
    LLMManagerError,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from ..gateway.peers import Forwarded
from ..gateway.pipeline import Call, Pipeline
from ..gateway.protocols.base import Adapter
from .base import BaseHandler, caller_of
from .intake import Exchange


class ModelsHandler(BaseHandler):
    """GET /v1/models (and /v1/models/{id}): every model and alias, with its state (a scoped key sees its own);
    in a cluster (``program.cluster_secret``), the models of the other up nodes too, with the nodes that have them."""

    def get(self, model_id: str | None = None) -> None:
        key = self.accounting.security.authorize(caller_of(self.request), None)
        allowed = self._allowed(key)
        created = int(self.manager.started_at)
        peers = self.service.pipeline.peers
        elsewhere = {m["name"]: m for m in peers.models()} if peers.enabled else {}
        if model_id:
            if allowed is not None and self._canonical(model_id) not in allowed and model_id not in allowed:
                raise ModelNotFound(f"model {model_id!r} not found", param="model")
            try:
                info = self.manager.model_info(model_id)
            except ModelNotFound:
                info = next((m for m in elsewhere.values() if model_id in (m["name"], *m["aliases"])), None)
                if info is None:
                    raise
            self.write_json(_model_obj(info["name"], created, info))
            return
        data = []
        here = self.manager.models_info()
        if peers.enabled:
            for info in here:
                info["nodes"] = [peers.node, *elsewhere.pop(info["name"], {}).get("nodes", [])]
        for info in [*here, *elsewhere.values()]:
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
            "mode": info["mode"], "state": info["state"], **({"parent": parent} if parent else {}),
            **({"nodes": info["nodes"]} if "nodes" in info else {})}


class V1OtherHandler(BaseHandler):
    """``/v1/...`` requests that are not POSTs (those go to ``ProxyExchange``): CORS preflights; 405 on an
    endpoint, 404 elsewhere."""

    def prepare(self) -> None:
        if self.request.method != "OPTIONS" and self.request.path.strip("/") not in self.service.pipeline.admission.served():
            raise NotFound(f"no route for {self.request.method} {self.request.path}")


def route_v1(pipeline: Pipeline) -> Callable[[httputil.RequestStartLine], Callable[..., Exchange] | None]:
    """The intake's route: every ``POST /v1/...`` but ``/v1/models``, ``/v1/files`` and ``/v1/batches`` (handlers)
    becomes a ``ProxyExchange``, and so does a POST to a plugin's endpoint alias outside /v1 (``/v2/rerank``)."""
    program = pipeline.manager.config.program

    def make(connection: httputil.HTTPConnection) -> Exchange:
        return ProxyExchange(pipeline, connection, program.cors_origins, int(program.max_body_mb * 1024 * 1024))

    def route(start_line: httputil.RequestStartLine) -> Callable[..., Exchange] | None:
        if start_line.method != "POST":
            return None
        path = start_line.path
        if path.startswith("/v1/"):
            return None if path.startswith(("/v1/models", "/v1/files", "/v1/batches")) else make
        bare = path.partition("?")[0].strip("/")
        return make if bare in pipeline.admission.served() or pipeline.admission.adapter_for(bare) is not None else None

    return route


class ProxyExchange(Exchange):
    """POST /v1/... on the wire: bytes in, a ``Call`` to the pipeline, its answer written back (a ``Reply``)."""

    def __init__(self, pipeline: Pipeline, connection: httputil.HTTPConnection, cors_origins: Any, max_body: int):
        super().__init__(connection, cors_origins, max_body)
        self.pipeline = pipeline
        self.t0 = time.monotonic()
        self.adapter: Adapter | None = None
        self.extra: dict[str, str] = {}  # headers the pipeline adds to the answer (X-LLM-Manager-Cache)

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> None:
        if isinstance(start_line, httputil.RequestStartLine):  # before any early error: it picks the error shape
            self.adapter = self.pipeline.admission.adapter_for(start_line.path.partition("?")[0].strip("/"))
        super().headers_received(start_line, headers)

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
        assert self.request is not None
        path = self.path.strip("/")
        headers = self.request.headers
        call = Call(path, raw, caller_of(self.request), self.t0, self.adapter,
                    no_cache="no-cache" in headers.get("Cache-Control", "").lower(),
                    forwarded=Forwarded.of(headers))  # another node's: the pipeline checks its secret
        await self.pipeline.handle(call, self)
        self.end()

    def error_body(self, exc: LLMManagerError) -> bytes:
        """The error in the shape of the request's protocol (OpenAI's, Anthropic's, Ollama's...)."""
        return self.adapter.error_body(exc) if self.adapter is not None else super().error_body(exc)

    # -- Reply
    @property
    def started(self) -> bool:
        return self.headers_written

    async def stream(self, status: int, content_type: str, data: bytes) -> None:
        try:
            if self.headers_written:
                await self.write(data)
            else:  # a stream: its head goes out with its first event, in one packet
                await self.start(status, {"Content-Type": content_type, "Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no", **self.extra}, data, streaming=True)
        except tornado.iostream.StreamClosedError:
            raise asyncio.CancelledError() from None

    def whole(self, status: int, content_type: str, data: bytes) -> None:
        if not self.extra:
            self.send_whole(status, content_type, data)
            return
        self.start(status, {"Content-Type": content_type, "Content-Length": str(len(data)), **self.extra}, data)
        self.end()

    def header(self, name: str, value: str) -> None:
        self.extra[name] = value
