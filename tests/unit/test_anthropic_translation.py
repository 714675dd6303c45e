"""The pure translation between Anthropic's Messages API and chat completions (no process, no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message

from llm_manager.errors import (
    AuthenticationError,
    BadRequest,
    ModelNotFound,
    NoCapacity,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    UpstreamError,
)
from llm_manager.gateway.protocols.anthropic import AnthropicAdapter, count_text, to_chat
from llm_manager.gateway.protocols.anthropic_stream import CountTranslator, MessageTranslator

ADAPTER = AnthropicAdapter()


def sse(*chunks: dict[str, Any] | str) -> bytes:
    return b"".join(b"data: " + (c.encode() if isinstance(c, str) else json.dumps(c).encode()) + b"\n\n"
                    for c in chunks)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


USAGE = {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5}}


def events_of(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.decode().split("\n\n"):
        if block:
            kind, payload = block.split("\n")
            assert kind.startswith("event: ") and payload.startswith("data: ")
            out.append(json.loads(payload[6:]))
            assert out[-1]["type"] == kind[7:]
    return out


def snapshot(data: bytes) -> Message:
    """The message the anthropic SDK builds from this stream (its public stream helper, over a mock transport)."""
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    client = anthropic.Anthropic(api_key="k", base_url="http://sdk.test", max_retries=0,
                                 http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))
    with client.messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]) as stream:
        return stream.get_final_message()


def test_request_with_everything() -> None:
    body = {
        "model": "claude-x", "max_tokens": 50, "system": [{"type": "text", "text": "be"}, {"type": "text", "text": "kind"}],
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"], "metadata": {"user_id": "u"},
        "stream": True, "tool_choice": {"type": "tool", "name": "calc", "disable_parallel_tool_use": True},
        "tools": [{"name": "calc", "description": "adds", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                                      "data": "QUJD"}},
                                         {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                              {"type": "text", "text": "adding"},
                                              {"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "2"},
                                         {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                                          "content": [{"type": "text", "text": "boom"}]},
                                         {"type": "text", "text": "thanks"}]},
        ]}
    endpoint, chat = ADAPTER.to_openai("messages", body, "served-name")
    assert endpoint == "v1/chat/completions"
    assert chat == {
        "model": "served-name", "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop": ["END"],
        "stream": True, "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"},
                                                    "description": "adds"}}],
        "tool_choice": {"type": "function", "function": {"name": "calc"}}, "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "be\nkind"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": "adding", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "calc", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "2"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"},
            {"role": "user", "content": "thanks"},
        ]}


@pytest.mark.parametrize(("choice", "expected"), [({"type": "auto"}, "auto"), ({"type": "any"}, "required"),
                                                  ({"type": "none"}, "none")])
def test_tool_choice(choice: dict[str, Any], expected: str) -> None:
    tools = [{"name": "t", "input_schema": {"type": "object"}}]
    chat = to_chat({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": tools,
                    "tool_choice": choice}, "m")
    assert chat["tool_choice"] == expected and "parallel_tool_calls" not in chat


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 5, "messages": []}, "messages"),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0]"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stop_sequences": "END"}, "stop_sequences"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "x"},
      "tools": [{"name": "t", "input_schema": {}}]}, "tool_choice"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as exc:
        to_chat(body, "m")
    assert exc.value.param == param


def test_whole_answer_with_text_and_tool_call() -> None:
    answer = {"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "let me see",
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "calc", "arguments": "{\"a\": 1, \"b\": 2}"}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}}
    out = MessageTranslator("claude-x").whole(json.dumps(answer).encode())
    message = Message.model_validate_json(out)  # the SDK's own type accepts it
    assert message.model == "claude-x" and message.stop_reason == "tool_use" and message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert (tool.id, tool.name, tool.input) == ("call_9", "calc", {"a": 1, "b": 2})  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 9)


@pytest.mark.parametrize(("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_whole_answer_stop_reasons(finish: str, reason: str) -> None:
    answer = {"choices": [{"finish_reason": finish, "message": {"role": "assistant", "content": "hi"}}]}
    out = json.loads(MessageTranslator("m").whole(json.dumps(answer).encode()))
    assert out["stop_reason"] == reason and out["content"] == [{"type": "text", "text": "hi"}]


def test_stream_of_text_then_a_tool_call_as_the_sdk_reads_it() -> None:
    t = MessageTranslator("claude-x")
    data = t.feed(sse(chunk({"role": "assistant", "content": None})))
    first = events_of(data)
    assert [e["type"] for e in first] == ["message_start", "ping"]  # at once: the client sees the answer begin
    data += t.feed(sse(chunk({"content": "Sure"}), chunk({"content": ", adding."})))
    data += t.feed(sse(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                              "function": {"name": "calc", "arguments": ""}}]}),
                       chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\": "}}]}),
                       chunk({"tool_calls": [{"index": 0, "function": {"arguments": "3}"}}]}),
                       chunk({}, "tool_calls"), USAGE, "[DONE]"))
    assert t.close() == b""  # [DONE] already ended the message
    events = events_of(data)
    assert [e["type"] for e in events] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    message = snapshot(data)
    assert message.content[0].text == "Sure, adding."  # type: ignore[union-attr]
    tool = message.content[1]
    assert (tool.type, tool.id, tool.name, tool.input) == ("tool_use", "call_1", "calc", {"a": 3})  # type: ignore
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 5)


def test_stream_without_done_is_closed_and_length_is_max_tokens() -> None:
    t = MessageTranslator("m")
    data = t.feed(sse(chunk({"content": "a"}), chunk({}, "length")))
    data += t.close()
    message = snapshot(data)
    assert message.stop_reason == "max_tokens" and message.content[0].text == "a"  # type: ignore[union-attr]


def test_stream_error_chunk_becomes_an_error_event() -> None:
    t = MessageTranslator("m")
    events = events_of(t.feed(sse(chunk({"content": "a"}), {"error": {"message": "context full", "code": 500}})))
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "context full"}}
    assert t.close() == b""


@pytest.mark.parametrize(("exc", "kind"), [
    (BadRequest("x"), "invalid_request_error"), (AuthenticationError("x"), "authentication_error"),
    (PermissionDenied("x"), "permission_error"), (ModelNotFound("x"), "not_found_error"),
    (PayloadTooLarge("x"), "request_too_large"), (RateLimited("x"), "rate_limit_error"),
    (NoCapacity("x"), "overloaded_error"), (UpstreamError("x"), "api_error")])
def test_error_shapes(exc: Any, kind: str) -> None:
    assert json.loads(ADAPTER.error_body(exc)) == {"type": "error", "error": {"type": kind, "message": "x"}}
    assert ADAPTER.stream_error(exc).startswith(b"event: error\ndata: {")


def test_count_tokens_asks_the_tokenizer_and_estimates_without_one() -> None:
    body = {"model": "m", "system": "sys", "messages": [{"role": "user", "content": "hello world"}],
            "tools": [{"name": "t", "input_schema": {"type": "object"}}]}
    endpoint, payload = ADAPTER.to_openai("count_tokens", body, "m")
    assert endpoint == "tokenize" and endpoint in ADAPTER.auxiliary
    assert payload["content"] == count_text(body) == 'system: sys\nuser: hello world\n' \
        '{"name": "t", "parameters": {"type": "object"}}'
    t = ADAPTER.translator("count_tokens", body, "m")
    assert isinstance(t, CountTranslator)
    assert json.loads(t.whole(b'{"tokens": [1, 2, 3]}')) == {"input_tokens": 3}
    estimate = json.loads(t.failed(404, b"File Not Found") or b"null")
    assert estimate == {"input_tokens": (len(payload["content"]) + 3) // 4}
    assert t.failed(500, b"boom") is None  # a real failure is told, not papered over


def test_reasoning_becomes_thinking_blocks() -> None:
    answer = {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "reasoning_content": "hmm",
                                                                "content": "42"}}]}
    whole = Message.model_validate_json(MessageTranslator("m").whole(json.dumps(answer).encode()))
    assert [b.type for b in whole.content] == ["thinking", "text"] and whole.content[0].thinking == "hmm"  # type: ignore
    t = MessageTranslator("m")
    data = t.feed(sse(chunk({"reasoning_content": "let me "}), chunk({"reasoning_content": "think"}),
                      chunk({"content": "42"}), chunk({}, "stop"), USAGE, "[DONE]"))
    message = snapshot(data)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "let me think" and message.content[1].text == "42"  # type: ignore
    assert message.stop_reason == "end_turn"
