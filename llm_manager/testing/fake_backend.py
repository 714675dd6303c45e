"""A small, real OpenAI-compatible model server shaped like llama.cpp's ``llama-server``.

Tests, the demo and benchmarks need a backend process that behaves like the real thing
(HTTP, SSE streaming, a loading phase, crashes, hangs) without a GPU or model weights.
Answers are deterministic: the same request always yields the same text, vectors and scores.

Run it with ``python -m llm_manager.testing.fake_backend --port 8081 [--model NAME] ...``,
or in-process with :func:`make_app` / :func:`start_server`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

from llm_manager.testing import fake_anthropic, fake_openresponses, fake_sleep, sim_driver
from llm_manager.testing import fake_responses as fr

_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
                503: "unavailable_error"}


@dataclass
class BackendOptions:
    """Everything the CLI flags control; also what in-process users pass to :func:`make_app`."""

    host: str = "127.0.0.1"
    port: int = 0
    model: str = "fake-model"
    load_delay: float = 0.0
    tokens_per_second: float = 0.0
    crash_after: int = 0  # 0 = never; subprocess use only (it calls os._exit)
    hang: bool = False
    fast: bool = False
    max_tokens_default: int = 16
    embedding_dim: int = 64
    log_requests: bool = True
    done_delay: float = 0.0  # seconds between "data: [DONE]" and the end of the body
    api_key: str | None = None  # when set, /v1 requests must carry "Authorization: Bearer <api_key>" (a cloud API)
    wake_time: float = 0.0  # seconds POST /wake_up takes (vLLM's sleep mode: fake_sleep.py)
    footprint_mb: int | None = None  # MB really held on each simulated device (sim_driver.py); None: as declared


class BackendState:
    """Per-server mutable state: start time (for the loading phase), request count, pre-rendered bodies."""

    def __init__(self, options: BackendOptions):
        self.options = options
        self.started = time.monotonic()
        self.created = int(time.time())
        self.inference_requests = 0
        self.asleep = False  # vLLM's sleep mode (fake_sleep.py): the weights are off the device
        self.fast_chat = b""
        self.fast_completion = b""
        if options.fast:  # render once so a benchmark measures the gateway, not this server
            n = options.max_tokens_default
            req = fr.GenerationRequest("fast", 1, n, limited=False, stream=False, include_usage=False)
            tokens = fr.generate_tokens("fast", n)
            self.fast_chat = _dumps(fr.chat_completion(options.model, req, tokens, cid="chatcmpl-fast",
                                                       created=self.created))
            self.fast_completion = _dumps(fr.text_completion(options.model, req, tokens, cid="chatcmpl-fast",
                                                             created=self.created))

    def loading(self) -> bool:
        return time.monotonic() - self.started < self.options.load_delay


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class BaseHandler(tornado.web.RequestHandler):
    """JSON responses and llama-server-shaped error bodies for every status, 404/405 included."""

    def initialize(self, state: BackendState) -> None:
        self.state = state
        self.tokens: int | None = None  # generated tokens, for the per-request log line

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Server", "llama.cpp (fake-backend)")

    def prepare(self) -> None:
        key = self.state.options.api_key
        if key and self.request.path.startswith("/v1/") and self.request.headers.get("Authorization") != f"Bearer {key}":
            self.send_error_json(401, "Invalid API Key", "authentication_error")

    def send_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(payload if isinstance(payload, bytes) else _dumps(payload))

    def send_error_json(self, code: int, message: str, type_: str | None = None) -> None:
        self.send_json(fr.error_body(code, message, type_ or _ERROR_TYPES.get(code, "server_error")), code)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:  # llama-server has no 405: a known path with another method is "not found"
            status_code = 404
            self.set_status(404)
        message = "File Not Found" if status_code == 404 else self._reason
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(_dumps(fr.error_body(status_code, message, _ERROR_TYPES.get(status_code, "server_error"))))


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            raise tornado.web.HTTPError(404)


class HealthHandler(BaseHandler):
    def get(self) -> None:
        if self.state.loading():
            self.send_error_json(503, "Loading model")
        else:
            self.send_json({"status": "ok"})


class ModelsHandler(BaseHandler):
    def get(self) -> None:
        opts = self.state.options
        self.send_json(fr.models_list(opts.model, self.state.created, opts.embedding_dim))


class InferenceHandler(BaseHandler):
    """Shared gate of the model endpoints: crash counter, loading 503, hang, JSON parsing."""

    async def post(self) -> None:
        state, opts = self.state, self.state.options
        state.inference_requests += 1
        if opts.crash_after and state.inference_requests >= opts.crash_after:
            print(f"fake-backend: crashing on request {state.inference_requests} (--crash-after)",
                  file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(3)
        if state.loading():
            return self.send_error_json(503, "Loading model")
        if state.asleep:
            return self.send_error_json(503, "Model is sleeping; POST /wake_up first")
        if opts.hang:
            await asyncio.get_running_loop().create_future()  # never resolved: the request hangs
        try:
            try:
                body = json.loads(self.request.body or b"null")
            except ValueError as exc:
                raise fr.RequestError(f"Invalid JSON body: {exc}") from None
            if not isinstance(body, dict):
                raise fr.RequestError("request body must be a JSON object")
            await self.handle(body)
        except fr.RequestError as exc:
            self.send_error_json(exc.code, exc.message, exc.type)

    async def handle(self, body: dict[str, Any]) -> None:
        raise NotImplementedError


class GenerationHandler(InferenceHandler):
    """``/v1/chat/completions`` (chat=True) and ``/v1/completions`` (chat=False)."""

    def initialize(self, state: BackendState, chat: bool = True) -> None:  # type: ignore[override]
        super().initialize(state)
        self.chat = chat

    async def handle(self, body: dict[str, Any]) -> None:
        opts = self.state.options
        req = fr.parse_generation(body, chat=self.chat, default_tokens=opts.max_tokens_default)
        self.tokens = req.n_tokens
        if req.stream:
            return await self.stream(req)
        if opts.tokens_per_second > 0 and req.n_tokens:
            await asyncio.sleep(req.n_tokens / opts.tokens_per_second)
        if opts.fast:
            self.tokens = opts.max_tokens_default
            return self.send_json(self.state.fast_chat if self.chat else self.state.fast_completion)
        tokens = fr.generate_tokens(req.prompt, req.n_tokens)
        build = fr.chat_completion if self.chat else fr.text_completion
        self.send_json(build(opts.model, req, tokens, tokens_per_second=opts.tokens_per_second))

    async def stream(self, req: fr.GenerationRequest) -> None:
        """SSE, one event per token, each flushed to the socket at once (paced by --tokens-per-second).

        Event layout as llama-server sends it: chat opens with a role chunk (``content: null``) and
        closes with a finish chunk carrying ``timings``, or, with ``stream_options.include_usage``, a
        bare finish chunk then a ``choices: []`` chunk with usage and timings. Completions have no
        role chunk and no separate usage chunk: the finish chunk always carries usage and timings.
        """
        opts = self.state.options
        model, created = opts.model, int(time.time())
        tokens = fr.generate_tokens(req.prompt, req.n_tokens)
        timings = req.timings(opts.tokens_per_second)
        cid = fr.new_id("chatcmpl")  # llama-server's completion ids start "chatcmpl-" too
        if self.chat:
            head = [fr.chat_chunk(cid, created, model, {"role": "assistant", "content": None})]
            body = [fr.chat_chunk(cid, created, model, {"content": t}) for t in tokens]
            if req.include_usage:
                tail = [fr.chat_chunk(cid, created, model, {}, req.finish_reason),
                        fr.usage_chunk("chat.completion.chunk", cid, created, model, req.usage(), timings)]
            else:
                tail = [fr.chat_chunk(cid, created, model, {}, req.finish_reason, timings=timings)]
        else:
            head = []
            body = [fr.completion_chunk(cid, created, model, t) for t in tokens]
            tail = [fr.completion_chunk(cid, created, model, "", req.finish_reason, usage=req.usage(),
                                        timings=timings)]
        interval = 1.0 / opts.tokens_per_second if opts.tokens_per_second > 0 else 0.0
        self.set_header("Content-Type", "text/event-stream")  # llama-server sends no Cache-Control
        self.set_header("X-Accel-Buffering", "no")
        sent = 0
        try:
            for event in head:
                await self._event(event)
            for event in body:
                if interval:
                    await asyncio.sleep(interval)
                await self._event(event)
                sent += 1
            for event in tail:
                await self._event(event)
            self.write(b"data: [DONE]\n\n")
            await self.flush()
            if opts.done_delay > 0:  # the body ends later than [DONE]: clients that hang up at [DONE] race it
                await asyncio.sleep(opts.done_delay)
        except StreamClosedError:  # client went away mid-stream: stop generating, log what was sent
            self.tokens = sent

    async def _event(self, payload: dict[str, Any]) -> None:
        self.write(b"data: " + _dumps(payload) + b"\n\n")
        await self.flush()


class EmbeddingsHandler(InferenceHandler):
    async def handle(self, body: dict[str, Any]) -> None:
        texts = fr.embedding_inputs(body)
        opts = self.state.options
        self.send_json(fr.embeddings(opts.model, texts, opts.embedding_dim))


class RerankHandler(InferenceHandler):
    async def handle(self, body: dict[str, Any]) -> None:
        self.send_json(fr.rerank(self.state.options.model, body))


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """One flushed stdout line per request: the supervisor reads backend logs line by line.
    Health probes are not logged (llama-server skips them too): a manager polls them every few ms."""
    if not handler.application.settings["backend_state"].options.log_requests:
        return
    if handler.request.path in ("/health", "/v1/health") and handler.get_status() in (200, 503):
        return
    tokens = getattr(handler, "tokens", None)
    req = handler.request
    line = f"{req.method} {req.path} {handler.get_status()}"
    if tokens is not None:
        line += f" {tokens} tokens"
    print(f"{line} {1000.0 * req.request_time():.1f}ms", flush=True)


def make_app(options: BackendOptions) -> tornado.web.Application:
    """The Tornado application; its loading clock starts now."""
    state = BackendState(options)
    s = {"state": state}
    routes: list[Any] = [
        (r"/(?:v1/)?health", HealthHandler, s),
        (r"/(?:v1/)?models", ModelsHandler, s),
        (r"/(?:v1/)?chat/completions", GenerationHandler, {"state": state, "chat": True}),
        (r"/(?:v1/)?completions", GenerationHandler, {"state": state, "chat": False}),
        (r"/(?:v1/)?embeddings", EmbeddingsHandler, s),
        (r"/(?:v1/)?(?:rerank|reranking)", RerankHandler, s),
        *fake_anthropic.routes(state),
        *fake_openresponses.routes(state),
        *fake_sleep.routes(state),
    ]
    return tornado.web.Application(routes, default_handler_class=NotFoundHandler, default_handler_args=s,
                                   log_function=_log_request, backend_state=state)


async def start_server(options: BackendOptions) -> tuple[HTTPServer, int]:
    """Bind and serve on the running loop; returns the server and the bound port (useful with port 0)."""
    sockets = bind_sockets(options.port, options.host)
    server = HTTPServer(make_app(options))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


async def serve(options: BackendOptions) -> int:
    """Serve until SIGTERM/SIGINT, then close connections (briefly) and return 0."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the ready line: a supervisor may signal right after it
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    server, port = await start_server(options)
    if options.footprint_mb is not None:  # what a simulated GPU's "driver" sees this process hold
        sim_driver.register(options.footprint_mb)
    host = f"[{options.host}]" if ":" in options.host else options.host
    print(f"fake-backend listening on http://{host}:{port} model={options.model}", flush=True)
    await stop.wait()
    sim_driver.unregister()
    server.stop()
    try:
        await asyncio.wait_for(server.close_all_connections(), 0.5)
    except asyncio.TimeoutError:
        pass
    print("fake-backend stopped", flush=True)
    return 0


def parse_args(argv: list[str] | None = None, prog: str = "fake_backend") -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description="Fake llama-server for tests and benchmarks.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port (printed on start)")
    p.add_argument("--model", default="fake-model", help="model id reported in every answer")
    p.add_argument("--load-delay", type=float, default=0.0, metavar="SECONDS",
                   help="answer 503 'Loading model' for this long after start")
    p.add_argument("--tokens-per-second", type=float, default=0.0, metavar="N",
                   help="pace generated tokens (0 = as fast as possible)")
    p.add_argument("--crash-after", type=int, default=0, metavar="N",
                   help="exit with code 3 when the N-th model request arrives")
    p.add_argument("--hang", action="store_true", help="model requests never answer once healthy")
    p.add_argument("--fail-start", action="store_true", help="print an error and exit 1 at once")
    p.add_argument("--fast", action="store_true", help="send pre-rendered non-streaming answers (benchmarks)")
    p.add_argument("--max-tokens-default", type=int, default=16, metavar="N",
                   help="tokens generated when the request sets no max_tokens")
    p.add_argument("--embedding-dim", type=int, default=64, metavar="N")
    p.add_argument("--done-delay", type=float, default=0.0, metavar="SECONDS",
                   help="end a stream's body this long after 'data: [DONE]' (the openai client hangs up at [DONE])")
    p.add_argument("--quiet", action="store_true", help="no per-request log lines")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1 requests")
    p.add_argument("--wake-time", type=float, default=0.0, metavar="SECONDS",
                   help="how long POST /wake_up takes after POST /sleep (vLLM's sleep mode)")
    p.add_argument("--footprint-mb", type=int, default=None, metavar="MB",
                   help="memory this process really holds on each simulated GPU it runs on (0 while asleep), "
                        "whatever the config declares")
    return p.parse_args(argv)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None, prog: str = "fake_backend") -> int:
    signal.signal(signal.SIGTERM, _exit_on_signal)  # a SIGTERM during start-up still exits 0
    args = parse_args(argv, prog)
    if args.fail_start:
        print(f"error: failed to load model '{args.model}'", file=sys.stderr, flush=True)
        return 1
    options = BackendOptions(
        host=args.host, port=args.port, model=args.model, load_delay=args.load_delay,
        tokens_per_second=args.tokens_per_second, crash_after=args.crash_after, hang=args.hang,
        fast=args.fast, max_tokens_default=args.max_tokens_default, embedding_dim=args.embedding_dim,
        log_requests=not args.quiet, done_delay=args.done_delay, api_key=args.api_key,
        wake_time=args.wake_time, footprint_mb=args.footprint_mb,
    )
    return asyncio.run(serve(options))


if __name__ == "__main__":
    sys.exit(main())
