"""OpenAI's Responses API (/v1/responses): requests translated to chat completions, or relayed to a server that speaks it.

Stored answers (``store``, default true as in OpenAI's API) live in the usage store so ``previous_response_id``
can prepend a conversation; a server that speaks the protocol natively (llama-server) keeps no state, so the
pass-through path expands ``previous_response_id`` into the input before relaying. The answers' shapes are built
in ``responses_answer.py``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ...errors import BadRequest, LLMManagerError, NotFound
from .base import Adapter, AnswerTranslator, chat_text
from .responses_answer import ChatToResponses, InputTokens, NativeWatcher, Saver


class ResponseStore(Protocol):
    """What the adapter needs of the usage store (``accounting.store.UsageStore``)."""

    def save_response(self, rid: str, model: str, items: list[Any], response: dict[str, Any],
                      retention_days: float = 30.0) -> None: ...

    def load_response(self, rid: str) -> tuple[str, list[Any], dict[str, Any]] | None: ...


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if isinstance(value, list) and all(isinstance(x, dict) for x in value):
        return list(value)
    raise BadRequest("input: required, a string or a list of input items", param="input")


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Responses content parts -> chat content parts (text and image_url)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content: expected a string or a list of content parts", param="input")
    parts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        else:
            raise BadRequest(f"{where}.content[{i}]: unsupported content part {kind!r} (input_text, input_image "
                             "with an image_url, output_text)", param="input")
    return parts


def _plain(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string (what every chat template takes); parts otherwise."""
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def to_messages(items: list[dict[str, Any]], instructions: Any = None) -> list[dict[str, Any]]:
    """Input items -> chat messages; a function call joins the assistant message before it."""
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        kind, where = item.get("type", "message"), f"input[{i}]"
        if kind == "message" and isinstance(item.get("role"), str):
            role = {"developer": "system"}.get(item["role"], item["role"])
            if role not in ("user", "system", "assistant"):
                raise BadRequest(f"{where}.role: expected user, system, developer or assistant", param="input")
            messages.append({"role": role, "content": _plain(_text_parts(item.get("content"), where))})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}
            if not isinstance(call["id"], str) or not isinstance(item.get("name"), str):
                raise BadRequest(f"{where}: a function_call needs call_id and name", param="input")
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _plain(_text_parts(output, where))
            if not isinstance(item.get("call_id"), str):
                raise BadRequest(f"{where}: a function_call_output needs call_id", param="input")
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind == "reasoning":
            continue  # the model's own reasoning is not replayed to a chat template
        else:
            raise BadRequest(f"{where}: unsupported input item type {kind!r} (message, function_call, "
                             "function_call_output)", param="input")
    return messages


def to_chat(body: dict[str, Any], items: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """A Responses request (its input already expanded with the stored conversation) as a chat completion."""
    chat: dict[str, Any] = {"model": model, "messages": to_messages(items, body.get("instructions"))}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("tools: expected a list", param="tools")
        fns = [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]  # others: no chat form
        if fns:
            chat["tools"] = [{"type": "function", "function": {k: t[k] for k in
                              ("name", "description", "parameters", "strict") if t.get(k) is not None}}
                             for t in fns]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, str):
        chat["tool_choice"] = choice
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "seed", "stop"):
        if body.get(key) is not None:
            chat[key] = body[key]
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {k: fmt[k] for k in
                                   ("name", "schema", "strict", "description") if k in fmt}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


class ResponsesAdapter(Adapter):
    name = "responses"
    paths = {"v1/responses": "create", "v1/responses/input_tokens": "input_tokens"}
    native = {"create": "v1/responses", "input_tokens": "v1/responses/input_tokens"}
    labels = {"create": "responses", "input_tokens": "responses/input_tokens"}
    auxiliary = frozenset({"tokenize"})  # llama-server's (and vLLM's) tokenizer: no interface plugin lists it
    free = frozenset({"input_tokens"})  # a count generates nothing: its usage row gets no token estimate

    def __init__(self, store: ResponseStore | None = None, retention_days: float = 30.0):
        self.store = store
        self.retention_days = retention_days
        self._last: tuple[dict[str, Any], list[dict[str, Any]]] | None = None  # (request body, its conversation)

    def conversation(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The stored turns ``previous_response_id`` names, then this request's input items (404: unknown id).

        Read once per request: ``to_openai`` and ``translator`` are called one after the other, with no await."""
        last = self._last
        if last is not None and last[0] is body:
            return last[1]
        items = self._expand(body)
        self._last = (body, items)
        return items

    def _expand(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        items = input_items(body)
        prev = body.get("previous_response_id")
        if prev is None:
            return items
        if not isinstance(prev, str) or not prev:
            raise BadRequest("previous_response_id: expected a response id", param="previous_response_id")
        stored = self.store.load_response(prev) if self.store is not None else None
        if stored is None:
            raise NotFound(f"no stored response {prev!r} (responses are kept for program.responses_retention_days)",
                           param="previous_response_id")
        _, before, response = stored
        return before + list(response.get("output") or []) + items

    def _saver(self, body: dict[str, Any], items: list[dict[str, Any]], model: str) -> Saver | None:
        if self.store is None or body.get("store") is False:
            return None
        store, days = self.store, self.retention_days
        return lambda response: store.save_response(str(response.get("id")), model, items, response, days)

    def to_openai(self, op: str, body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        chat = to_chat(body, self.conversation(body), model)
        if op == "input_tokens":  # the model server's own tokenizer; InputTokens falls back to an estimate
            return "tokenize", {"content": chat_text(chat), "add_special": True}
        return "v1/chat/completions", chat

    def translator(self, op: str, body: dict[str, Any], model: str) -> AnswerTranslator:
        items = self.conversation(body)
        if op == "input_tokens":
            return InputTokens(chat_text(to_chat(body, items, model)))
        return ChatToResponses(body, model, self._saver(body, items, model))

    def to_native(self, op: str, body: dict[str, Any], raw: bytes, model: str) -> tuple[bytes, AnswerTranslator | None]:
        """The relayed bytes (``previous_response_id`` expanded: the server keeps no state) and a watcher that adds
        the stream fields the openai SDK needs and stores the answer when asked."""
        items = self.conversation(body)
        if body.get("previous_response_id") is not None:
            native = {k: v for k, v in body.items() if k != "previous_response_id"}
            raw = json.dumps({**native, "input": items}).encode()
        return raw, NativeWatcher(self._saver(body, items, model)) if op == "create" else None

    def stream_error(self, exc: LLMManagerError) -> bytes:
        """Responses' ``error`` event; its ``error`` member makes the openai SDK raise."""
        err = exc.body()["error"]
        event = {"type": "error", "code": err.get("code"), "message": err.get("message"), "param": err.get("param"),
                 "error": err}
        return b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n"
