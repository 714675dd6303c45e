"""The fake backend's Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens), as llama-server serves it natively.

Lets tests relay this protocol to a server that speaks it (pass-through) without llama.cpp. Like llama-server, a
request is read as the chat request it amounts to, so the words generated are the ones /v1/chat/completions gives
for the same conversation. Also llama-server's ``/tokenize`` (count_tokens of translated models asks it).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from llm_manager.testing import fake_responses as fr

STOPS = {"stop": "end_turn", "length": "max_tokens"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body a Messages request amounts to (system first, tool results as tool turns)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise fr.RequestError("'messages' is required")
    chat: list[dict[str, Any]] = []
    if body.get("system"):
        chat.append({"role": "system", "content": _text(body["system"])})
    for message in messages:
        if not isinstance(message, dict):
            raise fr.RequestError("each message must be an object")
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    chat.append({"role": "tool", "content": _text(block.get("content"))})
        if _text(content) or not isinstance(content, list):
            chat.append({"role": message.get("role"), "content": _text(content)})
    out = {"messages": chat, "max_tokens": body.get("max_tokens"), "stream": bool(body.get("stream"))}
    return {k: v for k, v in out.items() if v is not None}


def _cut(tokens: list[str], stops: Any) -> tuple[list[str], str | None]:
    """Tokens up to the first stop sequence (the sequence not included) and the sequence, else all and None."""
    text = "".join(tokens)
    hits = [(text.find(s), s) for s in stops or () if isinstance(s, str) and s and s in text]
    if not hits:
        return tokens, None
    at, stop = min(hits)
    kept, length = [], 0
    for token in tokens:
        if length + len(token) > at:
            if at > length:
                kept.append(token[: at - length])
            break
        kept.append(token)
        length += len(token)
    return kept, stop


def answer(body: dict[str, Any], default_tokens: int) -> tuple[fr.GenerationRequest, list[str], str, str | None]:
    """(request, tokens, stop_reason, stop_sequence) of a Messages request, deterministically."""
    req = fr.parse_generation(chat_body(body), chat=True, default_tokens=default_tokens)
    tokens, stop = _cut(fr.generate_tokens(req.prompt, req.n_tokens), body.get("stop_sequences"))
    return req, tokens, ("stop_sequence" if stop else STOPS[req.finish_reason]), stop


def _sse(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + json.dumps({"type": kind, **payload}).encode() + b"\n\n"


class _Handler(tornado.web.RequestHandler):
    """JSON in, llama-server-shaped errors out (its own base: fake_backend imports this module, not the reverse)."""

    def initialize(self, state: Any) -> None:
        self.state = state
        self.tokens: int | None = None  # for fake_backend's per-request log line

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")

    def send_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload, separators=(",", ":")))

    async def post(self) -> None:
        self.state.inference_requests += 1
        if self.state.loading():
            return self.send_json(fr.error_body(503, "Loading model", "unavailable_error"), 503)
        try:
            try:
                body = json.loads(self.request.body or b"null")
            except ValueError as exc:
                raise fr.RequestError(f"Invalid JSON body: {exc}") from None
            if not isinstance(body, dict):
                raise fr.RequestError("request body must be a JSON object")
            await self.handle(body)
        except fr.RequestError as exc:
            self.send_json(fr.error_body(exc.code, exc.message, exc.type), exc.code)

    async def handle(self, body: dict[str, Any]) -> None:
        raise NotImplementedError


class MessagesHandler(_Handler):
    async def handle(self, body: dict[str, Any]) -> None:
        opts = self.state.options
        req, tokens, reason, stop = answer(body, opts.max_tokens_default)
        self.tokens = len(tokens)
        mid, model = fr.new_id("msg").replace("-", "_"), opts.model
        usage = {"input_tokens": req.prompt_tokens, "output_tokens": len(tokens)}
        if not req.stream:
            if opts.tokens_per_second > 0 and tokens:
                await asyncio.sleep(len(tokens) / opts.tokens_per_second)
            return self.send_json({"id": mid, "type": "message", "role": "assistant",
                                   "content": [{"type": "text", "text": "".join(tokens)}], "model": model,
                                   "stop_reason": reason, "stop_sequence": stop, "usage": usage})
        self.set_header("Content-Type", "text/event-stream")
        start = {"id": mid, "type": "message", "role": "assistant", "content": [], "model": model,
                 "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 0}}
        interval = 1.0 / opts.tokens_per_second if opts.tokens_per_second > 0 else 0.0
        try:
            self.write(_sse("message_start", {"message": start}))
            self.write(_sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
            await self.flush()
            for token in tokens:
                if interval:
                    await asyncio.sleep(interval)
                self.write(_sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": token}}))
                await self.flush()
            self.write(_sse("content_block_stop", {"index": 0}))
            self.write(_sse("message_delta", {"delta": {"stop_reason": reason, "stop_sequence": stop},
                                              "usage": {"output_tokens": len(tokens)}}))
            self.write(_sse("message_stop", {}))
            await self.flush()
        except StreamClosedError:
            pass


class CountHandler(_Handler):
    async def handle(self, body: dict[str, Any]) -> None:
        req = fr.parse_generation({**chat_body(body), "max_tokens": 0}, chat=True, default_tokens=0)
        self.send_json({"input_tokens": req.prompt_tokens})


class TokenizeHandler(_Handler):
    """llama-server's /tokenize: one token a word here."""

    async def handle(self, body: dict[str, Any]) -> None:
        content = body.get("content")
        if not isinstance(content, str):
            raise fr.RequestError('"content" must be provided')
        self.send_json({"tokens": [fr.seed_of(w) % 49152 for w in content.split()]})


def routes(state: Any) -> list[Any]:
    """Tornado routes for this protocol (the fake backend's shared state passed in)."""
    s = {"state": state}
    return [(r"/v1/messages", MessagesHandler, s), (r"/v1/messages/count_tokens", CountHandler, s),
            (r"/tokenize", TokenizeHandler, s)]

