"""The Responses API <-> chat completions translation, pure: requests, whole answers, streamed events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_manager.errors import BadRequest, NotFound
from llm_manager.gateway.protocols.responses import ResponsesAdapter, to_chat
from llm_manager.gateway.protocols.responses_answer import ChatToResponses, NativeWatcher


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, list[Any], dict[str, Any]]] = {}

    def save_response(self, rid: str, model: str, items: list[Any], response: dict[str, Any],
                      retention_days: float = 30.0) -> None:
        self.rows[rid] = (model, items, response)

    def load_response(self, rid: str) -> tuple[str, list[Any], dict[str, Any]] | None:
        return self.rows.get(rid)


def events(data: bytes) -> list[dict[str, Any]]:
    out = []
    for block in data.split(b"\n\n"):
        lines = block.splitlines()
        if not lines:
            continue
        assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
        event = json.loads(lines[1][6:])
        assert lines[0][7:].decode() == event["type"]
        out.append(event)
    return out


def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [] if usage else
                            [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_request_with_instructions_items_tools_and_limits() -> None:
    body = {"model": "m", "instructions": "be brief", "max_output_tokens": 7, "temperature": 0, "top_p": 0.5,
            "tool_choice": {"type": "function", "name": "get_weather"}, "stream": True,
            "tools": [{"type": "function", "name": "get_weather", "description": "d",
                       "parameters": {"type": "object", "properties": {}}},
                      {"type": "web_search"}],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather? "},
                                             {"type": "input_text", "text": "in Oslo"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"c":"Oslo"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"role": "developer", "content": "answer in one word"},
            ]}
    chat = to_chat(body, body["input"], "served-name")
    assert chat["model"] == "served-name" and chat["max_tokens"] == 7 and chat["temperature"] == 0
    assert chat["top_p"] == 0.5 and chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                                               "parameters": {"type": "object", "properties": {}}}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather? in Oslo"},
        {"role": "assistant", "content": "checking", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"c":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "system", "content": "answer in one word"},
    ]


def test_images_keep_their_parts_and_bad_items_are_400() -> None:
    items = [{"role": "user", "content": [{"type": "input_text", "text": "what is it"},
                                          {"type": "input_image", "image_url": "data:image/png;base64,AA"}]}]
    assert to_chat({}, items, "m")["messages"][0]["content"] == [
        {"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]
    with pytest.raises(BadRequest, match=r"input\[0\].*item_reference"):
        to_chat({}, [{"type": "item_reference", "id": "x"}], "m")
    with pytest.raises(BadRequest, match="input_file"):
        to_chat({}, [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}], "m")
    with pytest.raises(BadRequest, match="input: required"):
        ResponsesAdapter().to_openai("create", {"model": "m"}, "m")


def test_whole_answer_with_text_and_a_function_call_is_stored() -> None:
    store = MemoryStore()
    adapter = ResponsesAdapter(store)
    body = {"model": "alias", "input": "hi", "tools": [{"type": "function", "name": "f"}]}
    tr = adapter.translator("create", body, "m")
    chat = {"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "let me call", "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}
    resp = json.loads(tr.whole(json.dumps(chat).encode()))
    assert resp["id"].startswith("resp_") and resp["object"] == "response" and resp["status"] == "completed"
    assert resp["model"] == "m" and resp["tools"] == body["tools"]
    msg, call = resp["output"]
    assert msg["type"] == "message" and msg["content"][0] == {"type": "output_text", "text": "let me call",
                                                              "annotations": []}
    assert call == {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "f", "arguments": '{"a":1}',
                    "status": "completed"}
    assert resp["usage"]["input_tokens"] == 11 and resp["usage"]["output_tokens"] == 5
    assert resp["usage"]["total_tokens"] == 16
    model, items, saved = store.rows[resp["id"]]
    assert model == "m" and saved == resp and items[0]["content"][0]["text"] == "hi"
    # the next turn starts from the stored conversation
    follow = {"model": "alias", "previous_response_id": resp["id"],
              "input": [{"type": "function_call_output", "call_id": "call_9", "output": "42"}]}
    _, chat2 = adapter.to_openai("create", follow, "m")
    assert [m["role"] for m in chat2["messages"]] == ["user", "assistant", "tool"]
    assert chat2["messages"][1]["content"] == "let me call"
    assert chat2["messages"][1]["tool_calls"][0]["id"] == "call_9" and chat2["messages"][2]["content"] == "42"
    with pytest.raises(NotFound):
        adapter.to_openai("create", {**follow, "previous_response_id": "resp_nope"}, "m")


def test_store_false_and_length_make_an_unstored_incomplete_response() -> None:
    store = MemoryStore()
    tr = ResponsesAdapter(store).translator("create", {"input": "x", "store": False}, "m")
    chat = {"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "a b"}}]}
    resp = json.loads(tr.whole(json.dumps(chat).encode()))
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
    assert resp["store"] is False and store.rows == {}


def test_stream_of_text_then_tool_call() -> None:
    store = MemoryStore()
    tr = ChatToResponses({"input": "x"}, "m", lambda r: store.save_response(r["id"], "m", [], r))
    out = tr.feed(chunk({"role": "assistant", "content": None}))
    out += tr.feed(chunk({"content": "Hel"}) + chunk({"content": "lo"}))
    out += tr.feed(chunk({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                          "function": {"name": "f", "arguments": ""}}]}))
    out += tr.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}))
    out += tr.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}, "tool_calls"))
    out += tr.feed(chunk({}, usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}))
    out += tr.feed(b"data: [DONE]\n\n")
    assert tr.close() == b""
    evs = events(out)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert [e["type"] for e in evs] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert evs[6]["text"] == "Hello" and evs[6]["output_index"] == 0
    assert evs[9]["output_index"] == 1 and evs[9]["item"]["call_id"] == "call_7"
    assert evs[12]["arguments"] == '{"q":"x"}'
    final = evs[-1]["response"]
    assert final["usage"]["total_tokens"] == 7 and final["status"] == "completed"
    assert [o["type"] for o in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Hello" and "_text" not in final["output"][0]
    assert store.rows[final["id"]][2] == final


def test_stream_without_done_is_finished_by_close() -> None:
    tr = ChatToResponses({"input": "x"}, "m", None)
    out = tr.feed(chunk({"content": "a"}, "stop"))
    out += tr.close()
    assert events(out)[-1]["type"] == "response.completed"


def test_native_watcher_adds_indexes_and_stores_the_completed_response() -> None:
    store = MemoryStore()
    w = NativeWatcher(lambda r: store.save_response(r["id"], "m", [], r))
    done = {"type": "response.completed", "response": {"id": "resp_1", "object": "response", "output": []}}
    raw = (b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1"}}\n\n'
           b'event: response.output_item.added\ndata: {"type":"response.output_item.added","item":{"id":"msg_1"}}\n\n'
           b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"msg_1",'
           b'"delta":"hi"}\n\nevent: response.completed\ndata: ' + json.dumps(done).encode() + b"\n\n")
    out = w.feed(raw[:50]) + w.feed(raw[50:]) + w.close()
    evs = events(out)
    assert [e["sequence_number"] for e in evs] == [0, 1, 2, 3]
    assert evs[1]["output_index"] == 0 and evs[2]["output_index"] == 0 and evs[2]["content_index"] == 0
    assert store.rows["resp_1"][2]["id"] == "resp_1"


def test_input_tokens_ask_the_tokenizer_and_estimate_without_one() -> None:
    adapter = ResponsesAdapter()
    body = {"input": "one two", "instructions": "sys", "tools": [{"type": "function", "name": "f"}]}
    endpoint, req = adapter.to_openai("input_tokens", body, "m")
    assert endpoint == "tokenize" and req["add_special"] is True
    assert req["content"] == 'system: sys\nuser: one two\n{"name": "f"}'
    tr = adapter.translator("input_tokens", body, "m")
    assert json.loads(tr.whole(b'{"tokens": [1, 2, 3]}')) == {"object": "response.input_tokens", "input_tokens": 3}
    assert json.loads(tr.failed(404, b"") or b"{}") == {"object": "response.input_tokens", "input_tokens": 10,
                                                         "estimated": True}
    assert tr.failed(500, b"") is None


def test_conversation_is_read_once_per_request_and_errors_are_events() -> None:
    store = MemoryStore()
    store.save_response("resp_1", "m", [{"role": "user", "content": "a"}], {"id": "resp_1", "output": []})
    reads = []
    load = store.load_response
    store.load_response = lambda rid: reads.append(rid) or load(rid)  # type: ignore[method-assign]
    adapter = ResponsesAdapter(store)
    body = {"previous_response_id": "resp_1", "input": "b"}
    adapter.to_openai("create", body, "m")
    adapter.translator("create", body, "m")
    assert reads == ["resp_1"]
    adapter.to_openai("create", dict(body), "m")  # another request reads again
    assert reads == ["resp_1", "resp_1"]
    told = adapter.stream_error(BadRequest("boom", param="input"))
    assert told.startswith(b"event: error\ndata: ") and json.loads(told[19:])["error"]["message"] == "boom"
