"""Chat-completions answers as Anthropic Messages answers: a whole message, or its event stream.

The stream follows Anthropic's sequence: ``message_start``, ``ping``, per block ``content_block_start`` /
``content_block_delta`` (``thinking_delta``, ``text_delta``, ``input_json_delta``) / ``content_block_stop``, then ``message_delta``
(stop reason and usage) and ``message_stop``. OpenAI's usage chunk comes last, so ``message_start`` says 0 input
tokens and ``message_delta.usage`` carries the real counts (the anthropic SDKs take them from there).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .base import AnswerTranslator, TokenizeCount

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _tool_id(call_id: Any) -> str:
    return str(call_id) if call_id else "toolu_" + uuid.uuid4().hex[:24]


def _input_of(arguments: Any) -> Any:
    """A tool call's arguments (a JSON string) as the tool_use block's ``input`` object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    return {"input_tokens": int(usage.get("prompt_tokens") or 0), "output_tokens": int(usage.get("completion_tokens") or 0)}


def message_of(answer: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat.completion as an Anthropic message."""
    choices = answer.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("reasoning_content"):  # a reasoning model's thoughts (llama-server, vLLM): a thinking block
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": _tool_id(call.get("id")), "name": function.get("name", ""),
                        "input": _input_of(function.get("arguments"))})
    if not content:
        content.append({"type": "text", "text": ""})
    reason = STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn")
    if any(block["type"] == "tool_use" for block in content):
        reason = "tool_use"
    return {"id": new_message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": reason, "stop_sequence": None, "usage": _usage(answer.get("usage"))}


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json.dumps({"type": kind, **payload},
                                                                  separators=(",", ":")).encode() + b"\n\n"


def _data_lines(data: bytes) -> list[bytes]:
    """The ``data:`` payloads of complete SSE events (LF or CRLF framed)."""
    return [line[5:].strip() for line in data.splitlines() if line.startswith(b"data:")]


class MessageTranslator(AnswerTranslator):
    """One answer of /v1/messages, from chat completions (whole or streamed)."""

    def __init__(self, model: str):
        self.model = model
        self.id = new_message_id()
        self.started = False
        self.finished = False
        self.block = -1  # index of the open content block; -1: none open
        self.kind = ""  # "thinking", "text" or "tool_use": the open block's type
        self.tools: dict[int, int] = {}  # OpenAI tool call index -> content block index
        self.stop_reason = "end_turn"
        self.usage = {"input_tokens": 0, "output_tokens": 0}

    def whole(self, data: bytes) -> bytes:
        return json.dumps(message_of(json.loads(data), self.model)).encode()

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for line in _data_lines(data):
            if self.finished:
                break
            if line == b"[DONE]":
                out.append(self._finish())
                continue
            try:
                chunk = json.loads(line)
            except ValueError:
                continue
            if isinstance(chunk, dict):
                self._chunk(chunk, out)
        return b"".join(out)

    def close(self) -> bytes:
        return self._finish() if self.started and not self.finished else b""

    def _start(self, out: list[bytes]) -> None:
        if not self.started:
            self.started = True
            message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                       "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
            out.append(event("message_start", {"message": message}))
            out.append(event("ping", {}))

    def _chunk(self, chunk: dict[str, Any], out: list[bytes]) -> None:
        if isinstance(chunk.get("error"), dict):  # an upstream error told in-band
            self._start(out)
            error = chunk["error"]
            out.append(event("error", {"error": {"type": "api_error", "message": str(error.get("message", ""))}}))
            self.finished = True
            return
        self._start(out)
        if isinstance(chunk.get("usage"), dict):
            self.usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
                out.append(event("content_block_delta", {"index": self.block, "delta": {
                    "type": "thinking_delta", "thinking": delta["reasoning_content"]}}))
            if delta.get("content"):
                self._open("text", {"type": "text", "text": ""}, out)
                out.append(event("content_block_delta", {"index": self.block,
                                                         "delta": {"type": "text_delta", "text": delta["content"]}}))
            for call in delta.get("tool_calls") or ():
                self._tool_delta(call, out)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")

    def _open(self, kind: str, block: dict[str, Any], out: list[bytes], force: bool = False) -> None:
        if self.kind == kind and not force:
            return
        self._close_block(out)
        self.block += 1
        self.kind = kind
        out.append(event("content_block_start", {"index": self.block, "content_block": block}))

    def _close_block(self, out: list[bytes]) -> None:
        if self.kind:
            out.append(event("content_block_stop", {"index": self.block}))
            self.kind = ""

    def _tool_delta(self, call: dict[str, Any], out: list[bytes]) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.tools:  # a new call: its id and name come with its first delta
            block = {"type": "tool_use", "id": _tool_id(call.get("id")), "name": function.get("name", ""), "input": {}}
            self._open("tool_use", block, out, force=True)
            self.tools[index] = self.block
        arguments = function.get("arguments")
        if arguments and self.tools[index] == self.block and self.kind == "tool_use":
            out.append(event("content_block_delta", {"index": self.block,
                                                     "delta": {"type": "input_json_delta", "partial_json": arguments}}))

    def _finish(self) -> bytes:
        out: list[bytes] = []
        self._start(out)
        self._close_block(out)
        if self.tools:
            self.stop_reason = "tool_use"
        self.finished = True
        out.append(event("message_delta", {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                           "usage": self.usage}))
        out.append(event("message_stop", {}))
        return b"".join(out)


class CountTranslator(TokenizeCount):
    """count_tokens in Anthropic's shape (an estimate says nothing more: the shape has no field for it)."""

    def shape(self, tokens: int, estimated: bool) -> dict[str, Any]:
        return {"input_tokens": tokens}
