"""Responses API answers: a chat completion (whole or streamed) turned into a ``response`` object and its events,
and the watcher of a natively relayed answer (stores it; adds the stream fields the openai SDK indexes by).

A stored answer is saved before ``response.completed`` leaves: a client may name it in ``previous_response_id``
as soon as it has it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from .base import AnswerTranslator, TokenizeCount

Saver = Callable[[dict[str, Any]], None]

ECHOED = ("instructions", "max_output_tokens", "parallel_tool_calls", "previous_response_id", "temperature",
          "tool_choice", "tools", "top_p", "metadata")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def usage_of(chat_usage: Any) -> dict[str, Any] | None:
    """Chat usage -> Responses usage."""
    if not isinstance(chat_usage, dict) or not isinstance(chat_usage.get("prompt_tokens"), int):
        return None
    it, ot = chat_usage["prompt_tokens"], int(chat_usage.get("completion_tokens") or 0)
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {"input_tokens": it, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": ot,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": it + ot}


def message_item(text: str, mid: str | None = None, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"type": "message", "id": mid or new_id("msg"), "status": status, "role": "assistant", "content": content}


def call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": "fc_" + call_id.removeprefix("call_"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def reasoning_item(text: str, rid: str | None = None) -> dict[str, Any]:
    return {"type": "reasoning", "id": rid or new_id("rs"), "summary": [],
            "content": [{"type": "reasoning_text", "text": text}]}


class ChatToResponses(AnswerTranslator):
    """One chat completion answer as a Responses answer, whole or as a stream of events."""

    def __init__(self, request: dict[str, Any], model: str, saver: Saver | None):
        self.request, self.model, self.saver = request, model, saver
        self.id, self.created = new_id("resp"), int(time.time())
        self.seq = 0
        self.output: list[dict[str, Any]] = []  # items, in output order (their status tells open from done)
        self.text: dict[str, Any] | None = None  # the open message item
        self.reasoning: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool_call index -> its function_call item
        self.usage: dict[str, Any] | None = None
        self.finish: str | None = None
        self.ended = False

    def response(self, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "response", "created_at": self.created, "status": status,
                               "model": self.model, "output": self.output if status != "in_progress" else [],
                               "usage": self.usage if status != "in_progress" else None, "error": None,
                               "incomplete_details": None, "text": {"format": {"type": "text"}},
                               "store": self.saver is not None}
        for key in ECHOED:
            out[key] = self.request.get(key)
        out["tools"] = out["tools"] or []
        out["tool_choice"] = out["tool_choice"] or "auto"
        out["parallel_tool_calls"] = out["parallel_tool_calls"] is not False
        out["metadata"] = out["metadata"] or {}
        if status == "incomplete":
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        return out

    def _final(self) -> dict[str, Any]:
        """The finished response, stored when asked for."""
        final = self.response("incomplete" if self.finish == "length" else "completed")
        if self.saver is not None:
            self.saver(final)
        return final

    # -- a whole answer
    def whole(self, data: bytes) -> bytes:
        self.ended = True  # TranslatingReply.end() calls close() after a whole answer too: nothing to add then
        chat = json.loads(data)
        choice = (chat.get("choices") or [{}])[0]
        msg = choice.get("message") or {}
        self.finish, self.usage = choice.get("finish_reason"), usage_of(chat.get("usage"))
        if isinstance(msg.get("reasoning_content"), str) and msg["reasoning_content"]:
            self.output.append(reasoning_item(msg["reasoning_content"]))
        if isinstance(msg.get("content"), str) and msg["content"]:
            self.output.append(message_item(msg["content"]))
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            self.output.append(call_item(call.get("id") or new_id("call"), fn.get("name", ""),
                                         fn.get("arguments") or "{}"))
        return json.dumps(self._final()).encode()

    # -- a stream
    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return sse(event)

    def _add(self, item: dict[str, Any]) -> bytes:
        self.output.append(item)
        return self._event("response.output_item.added", output_index=len(self.output) - 1, item=dict(item))

    def _close_text(self) -> bytes:
        item, self.text = self.text, None
        if item is None:
            return b""
        at, text = self.output.index(item), item.pop("_text")
        part = {"type": "output_text", "text": text, "annotations": []}
        item.update(status="completed", content=[part])
        return (self._event("response.output_text.done", item_id=item["id"], output_index=at, content_index=0,
                            text=text, logprobs=[])
                + self._event("response.content_part.done", item_id=item["id"], output_index=at, content_index=0,
                              part=part)
                + self._event("response.output_item.done", output_index=at, item=item))

    def _close_reasoning(self) -> bytes:
        item, self.reasoning = self.reasoning, None
        if item is None:
            return b""
        at = self.output.index(item)
        item["content"] = [{"type": "reasoning_text", "text": item.pop("_text")}]
        return self._event("response.output_item.done", output_index=at, item=item)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        out = b""
        if isinstance(delta.get("reasoning_content"), str) and delta["reasoning_content"]:
            if self.reasoning is None:
                self.reasoning = {**reasoning_item(""), "content": []}
                out += self._add(self.reasoning)
                self.reasoning["_text"] = ""
            self.reasoning["_text"] += delta["reasoning_content"]
            out += self._event("response.reasoning_text.delta", item_id=self.reasoning["id"],
                               output_index=self.output.index(self.reasoning), content_index=0,
                               delta=delta["reasoning_content"])
        if isinstance(delta.get("content"), str) and delta["content"]:
            out += self._close_reasoning()
            if self.text is None:
                self.text = message_item("", status="in_progress")
                out += self._add(self.text)
                self.text["_text"] = ""
                out += self._event("response.content_part.added", item_id=self.text["id"],
                                   output_index=len(self.output) - 1, content_index=0,
                                   part={"type": "output_text", "text": "", "annotations": []})
            self.text["_text"] += delta["content"]
            out += self._event("response.output_text.delta", item_id=self.text["id"],
                               output_index=self.output.index(self.text), content_index=0, delta=delta["content"],
                               logprobs=[])
        for tc in delta.get("tool_calls") or []:
            out += self._close_reasoning() + self._close_text()
            index, fn = tc.get("index", 0), tc.get("function") or {}
            item = self.calls.get(index)
            if item is None:
                item = self.calls[index] = call_item(tc.get("id") or new_id("call"), fn.get("name") or "", "",
                                                     "in_progress")
                out += self._add(item)
            if fn.get("arguments"):
                item["arguments"] += fn["arguments"]
                out += self._event("response.function_call_arguments.delta", item_id=item["id"],
                                   output_index=self.output.index(item), delta=fn["arguments"])
        return out

    def feed(self, data: bytes) -> bytes:
        out = b""
        if self.seq == 0:
            out += self._event("response.created", response=self.response("in_progress"))
            out += self._event("response.in_progress", response=self.response("in_progress"))
        for line in data.splitlines():
            if not line.startswith(b"data:") or self.ended:
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                out += self.close()
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue
            self.usage = usage_of(chunk.get("usage")) or self.usage
            for choice in chunk.get("choices") or []:
                out += self._delta(choice.get("delta") or {})
                self.finish = choice.get("finish_reason") or self.finish
        return out

    def close(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        out = self._close_reasoning() + self._close_text()
        for item in self.calls.values():
            at = self.output.index(item)
            item["status"] = "completed"
            out += self._event("response.function_call_arguments.done", item_id=item["id"], output_index=at,
                               arguments=item["arguments"])
            out += self._event("response.output_item.done", output_index=at, item=item)
        final = self._final()
        return out + self._event(f"response.{final['status']}", response=final)


class NativeWatcher(AnswerTranslator):
    """A natively relayed Responses answer: passed on, with ``sequence_number``, ``output_index`` and
    ``content_index`` added where the server left them out (llama-server does), and stored when asked."""

    def __init__(self, saver: Saver | None):
        self.saver = saver
        self.seq = 0
        self.index: dict[str, int] = {}  # output item id -> output_index
        self.buf = b""

    def whole(self, data: bytes) -> bytes:
        if self.saver is not None:
            try:
                response = json.loads(data)
            except ValueError:
                return data
            if isinstance(response, dict) and response.get("object") == "response":
                self.saver(response)
        return data

    def _fix(self, event: dict[str, Any]) -> None:
        event.setdefault("sequence_number", self.seq)
        self.seq = int(event["sequence_number"]) + 1
        item = event.get("item")
        item_id = item.get("id") if isinstance(item, dict) else event.get("item_id")
        if item_id is not None and "output_index" not in event:
            event["output_index"] = self.index.setdefault(item_id, len(self.index))
        if event["type"].startswith(("response.output_text", "response.content_part", "response.reasoning_text")):
            event.setdefault("content_index", 0)
            if event["type"].startswith("response.output_text"):
                event.setdefault("logprobs", [])
        if event["type"] == "response.completed" and self.saver is not None:
            self.saver(event["response"])

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        end = self.buf.rfind(b"\n\n")
        if end < 0:
            return b""
        complete, self.buf = self.buf[:end + 2], self.buf[end + 2:]
        out = []
        for block in complete.split(b"\n\n")[:-1]:
            lines = block.splitlines()
            at = next((i for i, x in enumerate(lines) if x.startswith(b"data:")), None)
            try:
                event = json.loads(lines[at][5:]) if at is not None else None
            except ValueError:
                event = None
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                self._fix(event)
                lines[at] = b"data: " + json.dumps(event, separators=(",", ":")).encode()
            out.append(b"\n".join(lines) + b"\n\n")
        return b"".join(out)

    def close(self) -> bytes:
        tail, self.buf = self.buf, b""
        return tail


class InputTokens(TokenizeCount):
    """``input_tokens`` in the Responses API's shape; an estimate says so."""

    def shape(self, tokens: int, estimated: bool) -> dict[str, Any]:
        return {"object": "response.input_tokens", "input_tokens": tokens, **({"estimated": True} if estimated else {})}
