"""Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens): requests translated to chat completions, or
relayed to a server that speaks it.

Translation is for models whose server speaks only OpenAI's protocol; llama-server speaks this one itself, and
then the pipeline relays the request untouched (``native``). The answer's translation is in ``anthropic_stream``.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import BadRequest, LLMManagerError
from .anthropic_stream import CountTranslator, MessageTranslator
from .base import Adapter, AnswerTranslator, chat_text

# our status -> Anthropic's error type (the status itself stays ours)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "overloaded_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def _text_of(content: Any, where: str) -> str:
    """A string, or the text of a list of text blocks (system prompts, tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, dict):
                raise BadRequest(f"{where}: expected content blocks (objects), got {type(block).__name__}",
                                 param=where)
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "\n".join(parts)
    if content is None:
        return ""
    raise BadRequest(f"{where}: expected a string or a list of content blocks", param=where)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """An Anthropic image block as an OpenAI ``image_url`` part (base64 sources become data URLs)."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: required for an image block", param=where)
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise BadRequest(f"{where}.source.type: expected base64 or url", param=where)
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    """One user turn as OpenAI messages: its tool results first (``role: tool``), then what the user wrote."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content: expected a string or a list of content blocks", param=where)
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(block, dict):
            raise BadRequest(f"{at}: expected a content block (an object)", param=at)
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            text = _text_of(block.get("content"), at + ".content")
            if block.get("is_error"):
                text = "Error: " + text
            out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text})
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "text":
                parts.append({"type": "text", "text": str(source.get("data", ""))})
        # other blocks (thinking, cache hints, server tool results) say nothing a chat model can read
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any, where: str) -> dict[str, Any]:
    """An assistant turn: its text, and its tool_use blocks as ``tool_calls``."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content: expected a string or a list of content blocks", param=where)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append({"id": str(block.get("id", "")), "type": "function",
                          "function": {"name": str(block.get("name", "")),
                                       "arguments": json.dumps(block.get("input") or {})}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``system`` and ``messages`` as OpenAI chat messages (400 naming the field when they cannot be read)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: required, a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    system = _text_of(body.get("system"), "system")
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BadRequest(f"{where}.role: expected user or assistant", param=where)
        if message["role"] == "user":
            out.extend(_user_messages(message.get("content"), where))
        else:
            out.append(_assistant_message(message.get("content"), where))
    return out


def chat_tools(tools: Any) -> list[dict[str, Any]]:
    """Client tools as function tools; Anthropic's server tools (no ``input_schema``) have no equivalent."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest("tools: expected a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise BadRequest(f"tools[{i}].name: required", param="tools")
        if not isinstance(tool.get("input_schema"), dict):
            continue
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def chat_tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """(OpenAI tool_choice, parallel_tool_calls) of Anthropic's tool_choice."""
    if not isinstance(choice, dict):
        raise BadRequest("tool_choice: expected an object with a type", param="tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise BadRequest("tool_choice.type: expected auto, any, tool (with a name) or none", param="tool_choice")


def to_chat(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A Messages request as a chat-completions request."""
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required", param="max_tokens")
    if type(max_tokens) is not int or max_tokens < 1:
        raise BadRequest(f"max_tokens: expected an integer >= 1, got {max_tokens!r}", param="max_tokens")
    chat: dict[str, Any] = {"model": model, "messages": chat_messages(body), "max_tokens": max_tokens}
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            chat[name] = body[name]
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BadRequest("stop_sequences: expected a list of strings", param="stop_sequences")
        if stops:
            chat["stop"] = stops
    tools = chat_tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
        if body.get("tool_choice") is not None:
            choice, parallel = chat_tool_choice(body["tool_choice"])
            chat["tool_choice"] = choice
            if parallel is not None:
                chat["parallel_tool_calls"] = parallel
    if body.get("stream") is not None:
        chat["stream"] = body["stream"]
        if body["stream"] is True:  # the translator reads the usage chunk for message_delta's usage
            chat["stream_options"] = {"include_usage": True}
    return chat


def count_text(body: dict[str, Any]) -> str:
    """What a model reads of a count_tokens request, as text: each turn with its role, then the tools."""
    return chat_text({"messages": chat_messages(body), "tools": chat_tools(body.get("tools"))})


class AnthropicAdapter(Adapter):
    """Anthropic's Messages API: Claude Code and the anthropic SDKs talk to any model through it."""

    name = "anthropic"
    paths = {"v1/messages": "messages", "v1/messages/count_tokens": "count_tokens"}
    native = {"messages": "v1/messages", "count_tokens": "v1/messages/count_tokens"}
    labels = {"messages": "messages", "count_tokens": "messages/count_tokens"}
    auxiliary = frozenset({"tokenize"})  # llama-server's (and vLLM's) tokenizer: no inference endpoint
    free = frozenset({"count_tokens"})  # counting generates nothing: its usage rows carry no token estimate

    def to_openai(self, op: str, body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        if op == "count_tokens":  # the model server's own tokenizer counts; see CountTranslator for the fallback
            return "tokenize", {"content": count_text(body), "add_special": True}
        return "v1/chat/completions", to_chat(body, model)

    def translator(self, op: str, body: dict[str, Any], model: str) -> AnswerTranslator:
        if op == "count_tokens":
            return CountTranslator(count_text(body))
        return MessageTranslator(str(body.get("model") or model))

    def error_body(self, exc: LLMManagerError) -> bytes:
        return json.dumps({"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}).encode()

    def stream_error(self, exc: LLMManagerError) -> bytes:
        return b"event: error\ndata: " + self.error_body(exc) + b"\n\n"
