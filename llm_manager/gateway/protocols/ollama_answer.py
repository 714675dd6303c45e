"""OpenAI answers (chat completions, completions, embeddings) turned into Ollama's: one JSON object, or NDJSON lines.

Ollama reports durations in nanoseconds; llama-server's ``timings`` give the prompt and generation times, the rest is
measured here (from admission: so a cold start shows up as ``load_duration``, as with Ollama).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .base import AnswerTranslator

NS = 1_000_000_000
DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "function_call": "stop"}


def created_at() -> str:
    """Ollama's timestamp: RFC 3339 in UTC."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def sse_objects(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects of the ``data:`` lines in some SSE events (``[DONE]`` and anything unparsable skipped)."""
    out = []
    for line in data.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            obj = json.loads(payload)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def tool_call_of(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call (arguments as a JSON string) as Ollama's (arguments as an object)."""
    fn = call.get("function") or {}
    args: Any = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            args = {"arguments": args}  # not JSON: still handed over, never dropped
    return {"function": {"name": fn.get("name") or "", "arguments": args if isinstance(args, dict) else {}}}


class OllamaTranslator(AnswerTranslator):
    """One /api/chat or /api/generate answer. ``kind`` is "chat" (a ``message``) or "generate" (a ``response``);
    ``load`` answers an empty request (Ollama's way to load a model) with nothing but ``done_reason: load``."""

    content_type = "application/x-ndjson"

    def __init__(self, kind: str, model: str, on_done: Callable[[], None] | None = None, load: bool = False):
        self.kind, self.model, self.on_done, self.load = kind, model, on_done, load
        self.t0 = time.monotonic()
        self.first: float | None = None
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}
        self.timings: dict[str, Any] = {}
        self.calls: dict[int, dict[str, Any]] = {}  # streamed tool calls by index, arguments gathered

    # -- the shapes
    def _piece(self, text: str, thinking: str = "", tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "created_at": created_at()}
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_calls:
                message["tool_calls"] = tool_calls
            out["message"] = message
        else:
            out["response"] = text
            if thinking:
                out["thinking"] = thinking
        return out

    def _final(self, text: str = "", thinking: str = "", tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The last object: ``done``, why, token counts and durations (ns)."""
        now = time.monotonic()
        first = self.first if self.first is not None else now
        total = now - self.t0
        prompt_s = float(self.timings.get("prompt_ms") or 0) / 1000
        eval_s = float(self.timings.get("predicted_ms") or 0) / 1000 if self.timings else now - first
        out = self._piece(text, thinking, tool_calls)
        reason = "load" if self.load else DONE_REASONS.get(self.finish or "stop", self.finish or "stop")
        out.update(done=True, done_reason=reason, total_duration=int(total * NS),
                   load_duration=int(max(0.0, first - self.t0 - prompt_s) * NS))
        if not self.load:
            out.update(prompt_eval_count=int(self.usage.get("prompt_tokens") or self.timings.get("prompt_n") or 0),
                       prompt_eval_duration=int(prompt_s * NS),
                       eval_count=int(self.usage.get("completion_tokens") or self.timings.get("predicted_n") or 0),
                       eval_duration=int(eval_s * NS))
        return out

    def _done(self) -> None:
        if self.on_done is not None:
            self.on_done()
            self.on_done = None

    # -- AnswerTranslator
    def whole(self, data: bytes) -> bytes:
        now = time.monotonic()
        answer = json.loads(data)
        choice = (answer.get("choices") or [{}])[0]
        self.usage = answer.get("usage") or {}
        # no server timings: the whole wait counts as generation; the time the model did not work is the load
        self.timings = answer.get("timings") or {"predicted_ms": (now - self.t0) * 1000}
        self.first = now - float(self.timings.get("predicted_ms") or 0) / 1000
        self.finish = choice.get("finish_reason")
        message = choice.get("message") or {}
        text = "" if self.load else str(message.get("content") or choice.get("text") or "")
        thinking = "" if self.load else str(message.get("reasoning_content") or "")
        calls = [tool_call_of(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        self._done()
        return json.dumps(self._final(text, thinking, calls or None)).encode()

    def feed(self, data: bytes) -> bytes:
        if self.first is None:
            self.first = time.monotonic()
        lines = []
        for chunk in sse_objects(data):
            if isinstance(chunk.get("usage"), dict):
                self.usage = chunk["usage"]
            if isinstance(chunk.get("timings"), dict):
                self.timings = chunk["timings"]
            for choice in chunk.get("choices") or []:
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
                delta = choice.get("delta") or {}
                text = str(delta.get("content") or choice.get("text") or "")
                thinking = str(delta.get("reasoning_content") or "")
                for call in delta.get("tool_calls") or []:
                    self._gather(call)
                if (text or thinking) and not self.load:
                    lines.append(json.dumps({**self._piece(text, thinking), "done": False}).encode() + b"\n")
        return b"".join(lines)

    def _gather(self, call: dict[str, Any]) -> None:
        slot = self.calls.setdefault(int(call.get("index") or 0), {"function": {"name": "", "arguments": ""}})
        fn = call.get("function") or {}
        slot["function"]["name"] += str(fn.get("name") or "")
        slot["function"]["arguments"] += str(fn.get("arguments") or "")

    def close(self) -> bytes:
        out = b""
        if self.calls:  # Ollama sends tool calls whole, in one piece before the last
            calls = [tool_call_of(self.calls[i]) for i in sorted(self.calls)]
            out = json.dumps({**self._piece("", tool_calls=calls), "done": False}).encode() + b"\n"
        self._done()
        return out + json.dumps(self._final()).encode() + b"\n"


class EmbedTranslator(AnswerTranslator):
    """/api/embed (``embeddings``, a list per input) or the older /api/embeddings (``embedding``, one vector)."""

    def __init__(self, model: str, single: bool, on_done: Callable[[], None] | None = None):
        self.model, self.single, self.on_done = model, single, on_done
        self.t0 = time.monotonic()

    def whole(self, data: bytes) -> bytes:
        answer = json.loads(data)
        rows = sorted((d for d in answer.get("data") or [] if isinstance(d, dict)), key=lambda d: d.get("index", 0))
        vectors = [d.get("embedding") or [] for d in rows]
        if self.on_done is not None:
            self.on_done()
        if self.single:
            return json.dumps({"embedding": vectors[0] if vectors else []}).encode()
        usage = answer.get("usage") or {}
        return json.dumps({"model": self.model, "embeddings": vectors,
                           "total_duration": int((time.monotonic() - self.t0) * NS), "load_duration": 0,
                           "prompt_eval_count": int(usage.get("prompt_tokens") or 0)}).encode()

    def feed(self, data: bytes) -> bytes:  # embeddings never stream
        return b""
