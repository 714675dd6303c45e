"""The pure translation between Ollama's API and OpenAI's: requests, answers (whole and NDJSON), keep_alive, names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_manager.errors import BadRequest, ModelNotFound, RateLimited
from llm_manager.gateway.protocols.ollama import (
    OllamaAdapter,
    chat_messages,
    generate_request,
    keep_alive_seconds,
    sampling,
    tagged,
    untagged,
)
from llm_manager.gateway.protocols.ollama_answer import EmbedTranslator, OllamaTranslator


def sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs)


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra}


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), (0, 0.0), (300, 300.0), (1.5, 1.5), (-1, -1.0), ("5m", 300.0), ("1h30m", 5400.0),
    ("10s", 10.0), ("300ms", 0.3), ("0", 0.0), ("-1", -1.0), ("-5m", -1.0), ("3600", 3600.0), ("24h", 86400.0),
])
def test_keep_alive_values(value: Any, seconds: float | None) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 m", "5mx", True, [1]])
def test_bad_keep_alive_is_a_400(value: Any) -> None:
    with pytest.raises(BadRequest, match="keep_alive"):
        keep_alive_seconds(value)


def test_names_and_tags() -> None:
    def resolve(name: str) -> Any:
        if name not in ("a", "b:latest"):
            raise ModelNotFound(f"model {name!r} not found")
        return name

    assert untagged("a:latest", resolve) == "a"
    assert untagged("b:latest", resolve) == "b:latest"  # a configured name with its tag wins
    assert untagged("a:7b", resolve) == "a:7b" and untagged("a", resolve) == "a"
    assert untagged("c:latest") == "c"
    assert tagged("a") == "a:latest" and tagged("qwen:7b") == "qwen:7b"


def test_options_and_format() -> None:
    body = {"options": {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "num_predict": 12, "stop": "END",
                        "seed": 3, "num_ctx": 8192, "num_gpu": 99}, "format": "json"}
    assert sampling(body) == {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "max_tokens": 12, "stop": ["END"],
                              "seed": 3, "response_format": {"type": "json_object"}}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert sampling({"format": schema, "options": {"num_predict": -1}}) == {
        "response_format": {"type": "json_schema", "json_schema": {"name": "format", "schema": schema}}}
    with pytest.raises(BadRequest, match="format"):
        sampling({"format": "xml"})
    with pytest.raises(BadRequest, match="options"):
        sampling({"options": [1]})


def test_chat_messages_images_and_tools() -> None:
    messages = chat_messages([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "look", "images": ["/9j/4AAQ", "iVBORw0K"]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
            {"function": {"name": "time", "arguments": {"tz": "CET"}}}]},
        {"role": "tool", "content": "12:00", "tool_name": "time"},
        {"role": "tool", "content": "sunny"},
    ])
    assert messages[0] == {"role": "system", "content": "sys"}
    assert messages[1]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}]
    calls = messages[2]["tool_calls"]
    assert messages[2]["content"] is None
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("call_2_0", "weather", {"city": "Paris"}), ("call_2_1", "time", {"tz": "CET"})]
    assert messages[3] == {"role": "tool", "tool_call_id": "call_2_1", "content": "12:00"}  # by tool_name
    assert messages[4] == {"role": "tool", "tool_call_id": "call_2_0", "content": "sunny"}  # the one left
    with pytest.raises(BadRequest, match="tool result"):
        chat_messages([{"role": "tool", "content": "x"}])
    with pytest.raises(BadRequest, match="messages\\[0\\]"):
        chat_messages([{"content": "no role"}])


def test_chat_request_streams_by_default_with_usage() -> None:
    adapter = OllamaAdapter()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    endpoint, body = adapter.to_openai("chat", {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                "tools": tools}, "m-real")
    assert endpoint == "v1/chat/completions" and body["model"] == "m-real" and body["tools"] == tools
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    _, body = adapter.to_openai("chat", {"model": "m", "messages": [], "stream": False}, "m")
    assert body["stream"] is False and "stream_options" not in body
    assert body["max_tokens"] == 1  # an empty chat only loads the model


def test_generate_request_per_mode() -> None:
    body = {"prompt": "p", "system": "s", "images": ["iVBORw0K"], "suffix": "ignored", "stream": False}
    endpoint, out = generate_request(body, "m", chat=True)
    assert endpoint == "v1/chat/completions" and out["messages"][0] == {"role": "system", "content": "s"}
    assert out["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    endpoint, out = generate_request({"prompt": "p", "system": "s", "raw": True}, "m", chat=True)
    assert endpoint == "v1/completions" and out["prompt"] == "p" and out["stream"] is True
    endpoint, out = generate_request({"prompt": "p", "system": "s"}, "m", chat=False)
    assert endpoint == "v1/completions" and out["prompt"] == "s\n\np"
    with pytest.raises(BadRequest, match="images"):
        generate_request({"prompt": "p", "images": ["x"]}, "m", chat=False)


def test_embed_requests() -> None:
    adapter = OllamaAdapter()
    assert adapter.to_openai("embed", {"input": ["a", "b"], "dimensions": 8}, "e") == (
        "v1/embeddings", {"model": "e", "input": ["a", "b"], "dimensions": 8})
    assert adapter.to_openai("embeddings", {"prompt": "a"}, "e") == ("v1/embeddings", {"model": "e", "input": "a"})
    with pytest.raises(BadRequest, match="input"):
        adapter.to_openai("embed", {"input": []}, "e")


def test_whole_chat_answer_with_tool_calls_and_timings() -> None:
    done: list[bool] = []
    t = OllamaTranslator("chat", "m:latest", lambda: done.append(True))
    answer = {"choices": [{"message": {"role": "assistant", "content": "", "reasoning_content": "hmm",
                                       "tool_calls": [{"id": "c1", "type": "function", "function": {
                                           "name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                           "finish_reason": "tool_calls"}],
              "usage": {"prompt_tokens": 11, "completion_tokens": 7},
              "timings": {"prompt_ms": 2.0, "predicted_ms": 5.0}}
    out = json.loads(t.whole(json.dumps(answer).encode()))
    assert out["model"] == "m:latest" and out["done"] is True and out["done_reason"] == "stop"
    assert out["message"] == {"role": "assistant", "content": "", "thinking": "hmm",
                              "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]}
    assert (out["prompt_eval_count"], out["eval_count"]) == (11, 7)
    assert (out["prompt_eval_duration"], out["eval_duration"]) == (2_000_000, 5_000_000)
    assert out["total_duration"] >= out["load_duration"] >= 0 and out["created_at"].endswith("Z")
    assert done == [True]


def test_streamed_generate_answer() -> None:
    t = OllamaTranslator("generate", "m", None)
    assert t.content_type == "application/x-ndjson"
    first = t.feed(sse(chunk({"role": "assistant", "content": None})))
    assert first == b""  # nothing to say yet
    lines = t.feed(sse(chunk({"content": "one "}), chunk({"content": "two "})))
    parsed = [json.loads(x) for x in lines.splitlines()]
    assert [(p["response"], p["done"]) for p in parsed] == [("one ", False), ("two ", False)]
    t.feed(sse(chunk({}, "length"), {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                                     "timings": {"prompt_ms": 1.0, "predicted_ms": 4.0}}) + b"data: [DONE]\n\n")
    final = json.loads(t.close())
    assert final["done"] is True and final["done_reason"] == "length" and final["response"] == ""
    assert (final["prompt_eval_count"], final["eval_count"], final["eval_duration"]) == (3, 2, 4_000_000)


def test_streamed_tool_call_fragments_come_whole() -> None:
    t = OllamaTranslator("chat", "m", None)
    t.feed(sse(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a\""}}]})))
    t.feed(sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}), chunk({}, "tool_calls")))
    tail = [json.loads(x) for x in t.close().splitlines()]
    assert tail[0]["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert tail[0]["done"] is False and tail[1]["done"] is True and tail[1]["done_reason"] == "stop"


def test_embedding_answers() -> None:
    answer = json.dumps({"data": [{"index": 1, "embedding": [0.2]}, {"index": 0, "embedding": [0.1]}],
                         "usage": {"prompt_tokens": 4}}).encode()
    out = json.loads(EmbedTranslator("e", single=False).whole(answer))
    assert out["embeddings"] == [[0.1], [0.2]] and out["prompt_eval_count"] == 4 and out["model"] == "e"
    assert json.loads(EmbedTranslator("e", single=True).whole(answer)) == {"embedding": [0.1]}


class FakeControl:
    def __init__(self) -> None:
        self.kept: list[tuple[str, float | None]] = []
        self.interfaces: dict[str, Any] = {}

    def resolve(self, name: str) -> Any:
        if name != "m":
            raise ModelNotFound(f"model {name!r} not found")
        return name

    def keep_alive(self, name: str, seconds: float | None) -> None:
        self.kept.append((name, seconds))


def test_adapter_names_keep_alive_unload_and_errors() -> None:
    control = FakeControl()
    adapter = OllamaAdapter(control)
    assert adapter.model_of("chat", {"model": "m:latest"}) == "m"
    assert adapter.model_of("chat", {"model": "x:latest"}) == "x:latest"  # unknown: the 404 names what was asked
    t = adapter.translator("embed", {"model": "m", "input": "a", "keep_alive": "2m"}, "m")
    t.whole(json.dumps({"data": [{"index": 0, "embedding": [1.0]}]}).encode())
    assert control.kept == [("m", 120.0)]
    t = adapter.translator("chat", {"model": "m", "messages": HI_MESSAGES}, "m")
    t.whole(json.dumps({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}).encode())
    assert control.kept[-1] == ("m", None)  # no keep_alive: back to the config's ttl
    assert adapter.local("chat", {"model": "m", "messages": HI_MESSAGES, "keep_alive": 0}, "m") is None
    unload = json.loads(adapter.local("generate", {"model": "m", "keep_alive": 0}, "m") or b"")
    assert unload["done_reason"] == "unload" and unload["response"] == "" and control.kept[-1] == ("m", 0.0)
    assert json.loads(adapter.error_body(RateLimited("slow down"))) == {"error": "slow down"}
    assert adapter.stream_error(BadRequest("bad")) == b'{"error": "bad"}\n'


HI_MESSAGES = [{"role": "user", "content": "hi"}]
