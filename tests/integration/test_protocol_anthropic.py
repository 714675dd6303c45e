"""Anthropic's Messages API through a real manager process, with the official anthropic SDK: a translated model
(its fake backend speaks only OpenAI's protocol) and a pass-through one (the fake backend's native /v1/messages,
as llama-server's)."""

from __future__ import annotations

import sys
from typing import Any

import anthropic
import httpx
import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until

from llm_manager.testing import fake_responses as fr

ADMIN = "sk-admin-anthropic"
USER = "sk-user-anthropic"
TRANSLATED, NATIVE = "translated", "native"
MODELS = (TRANSLATED, NATIVE)
HI = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Any:
    doc = config_doc({
        TRANSLATED: fake_model("Chat", aliases=["claude-test"], protocols=["openai"]),
        NATIVE: fake_model("Chat", protocols=["openai", "anthropic"]),
        "too-big": fake_model("Chat", memory={"gpu a": 5000}),
    }, gpus={"gpu a": 1000}, admin_key=ADMIN, flush_interval=0.2, api_keys=[{"key": USER, "name": "user"}])
    m = ManagerProcess(tmp_path_factory.mktemp("anthropic"), doc)
    m.http.headers["Authorization"] = f"Bearer {ADMIN}"
    yield m
    m.stop()


@pytest.fixture
def client(mgr: ManagerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mgr.url, api_key=USER, max_retries=0)  # the key goes as x-api-key


def chat_text(mgr: ManagerProcess, model: str, messages: list[dict[str, Any]], max_tokens: int) -> str:
    oa = openai.OpenAI(base_url=mgr.url + "/v1", api_key=USER, max_retries=0)
    r = oa.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens)  # type: ignore[arg-type]
    return r.choices[0].message.content or ""


def last_row(mgr: ManagerProcess, endpoint: str, model: str, n_before: int) -> dict[str, Any]:
    """The newest usage row of ``endpoint`` for ``model`` once more than ``n_before`` such rows exist."""
    def rows() -> list[dict[str, Any]]:
        recent = mgr.http.get("/api/usage/recent", params={"limit": 200}).json()["requests"]
        return [r for r in recent if r["endpoint"] == endpoint and r["model"] == model]

    found = wait_until(lambda: len(rows()) > n_before and rows())
    assert found, f"no new usage row for {endpoint} {model}"
    return found[-1]


def count_rows(mgr: ManagerProcess, endpoint: str, model: str) -> int:
    recent = mgr.http.get("/api/usage/recent", params={"limit": 200}).json()["requests"]
    return sum(1 for r in recent if r["endpoint"] == endpoint and r["model"] == model)


@pytest.mark.parametrize("model", MODELS)
def test_plain_message_is_the_chat_answer_and_is_counted(mgr: ManagerProcess, client: anthropic.Anthropic,
                                                         model: str) -> None:
    before = count_rows(mgr, "messages", model)
    m = client.messages.create(model=model, max_tokens=6, messages=HI, metadata={"user_id": "u1"})  # type: ignore
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"]
    text = m.content[0].text  # type: ignore[union-attr]
    assert text == chat_text(mgr, model, HI, 6) and len(text.split()) == 6
    assert m.stop_reason == "max_tokens" and m.stop_sequence is None
    assert m.usage.output_tokens == 6 and m.usage.input_tokens == 2 + 4  # the fake: words + 4 per message
    row = last_row(mgr, "messages", model, before)
    assert (row["prompt_tokens"], row["completion_tokens"], row["status"]) == (6, 6, 200)
    assert not row["estimated"] and row["key_id"] == "cfg:user"


@pytest.mark.parametrize("model", MODELS)
def test_system_and_multi_turn(mgr: ManagerProcess, client: anthropic.Anthropic, model: str) -> None:
    turns = [{"role": "user", "content": "first question"},
             {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
             {"role": "user", "content": [{"type": "text", "text": "second question"}]}]
    m = client.messages.create(model=model, max_tokens=5, system=[{"type": "text", "text": "be brief"}],
                               messages=turns)  # type: ignore[arg-type]
    as_chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first question"},
               {"role": "assistant", "content": "first answer"}, {"role": "user", "content": "second question"}]
    assert m.content[0].text == chat_text(mgr, model, as_chat, 5)  # type: ignore[union-attr]
    assert m.usage.input_tokens == 2 + 2 + 2 + 2 + 4 * 4  # the fake counted all four turns


def test_stop_sequences(mgr: ManagerProcess, client: anthropic.Anthropic) -> None:
    """Pass-through: the server stops and says which sequence; translated: accepted and sent on as ``stop``."""
    full = client.messages.create(model=NATIVE, max_tokens=8, messages=HI).content[0].text  # type: ignore
    word = full.split()[3]
    m = client.messages.create(model=NATIVE, max_tokens=8, messages=HI, stop_sequences=[" " + word])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == " " + word
    assert m.content[0].text == full[: full.index(" " + word)]  # type: ignore[union-attr]
    t = client.messages.create(model=TRANSLATED, max_tokens=8, messages=HI, stop_sequences=["zzz"])
    assert t.stop_reason == "max_tokens" and len(t.content[0].text.split()) == 8  # type: ignore[union-attr]


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper(mgr: ManagerProcess, client: anthropic.Anthropic, model: str) -> None:
    before = count_rows(mgr, "messages", model)
    with client.messages.stream(model=model, max_tokens=7, messages=HI) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 7 and "".join(pieces) == chat_text(mgr, model, HI, 7)
    assert final.content[0].text == "".join(pieces)  # type: ignore[union-attr]
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (6, 7)  # from message_delta when translated
    row = last_row(mgr, "messages", model, before)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (6, 7) and row["stream"] and not row["estimated"]


@pytest.mark.parametrize("model", MODELS)
def test_raw_stream_events_in_anthropic_order(client: anthropic.Anthropic, model: str) -> None:
    events = list(client.messages.create(model=model, max_tokens=3, messages=HI, stream=True))
    kinds = [e.type for e in events if e.type != "ping"]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "max_tokens" and events[-2].usage.output_tokens == 3  # type: ignore


async def test_async_client_streams_and_answers(mgr: ManagerProcess) -> None:
    client = anthropic.AsyncAnthropic(base_url=mgr.url, auth_token=USER, max_retries=0)  # Authorization: Bearer
    m = await client.messages.create(model="claude-test", max_tokens=4, messages=HI)  # type: ignore[arg-type]
    assert m.model == "claude-test" and len(m.content[0].text.split()) == 4  # type: ignore[union-attr]
    async with client.messages.stream(model="claude-test", max_tokens=4, messages=HI) as stream:  # type: ignore
        text = "".join([t async for t in stream.text_stream])
    assert text == m.content[0].text  # type: ignore[union-attr]
    await client.close()


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(mgr: ManagerProcess, client: anthropic.Anthropic, model: str) -> None:
    """Pass-through: the server's own count; translated: the server's /tokenize of the conversation's text.
    Counting generates nothing: its usage row carries no (estimated) tokens."""
    before = count_rows(mgr, "messages/count_tokens", model)
    r = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "one two three four"}])
    expected = 4 + 4 if model == NATIVE else len("user: one two three four".split())
    assert r.input_tokens == expected
    row = last_row(mgr, "messages/count_tokens", model, before)
    assert row["status"] == 200 and not row["estimated"] and not row["prompt_tokens"] and not row["completion_tokens"]


def test_tools_are_sent_and_tool_turns_accepted(client: anthropic.Anthropic) -> None:
    """The fake backend never calls tools; a conversation with tool_use and tool_result turns goes through."""
    tools = [{"name": "get_weather", "description": "Weather of a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    turns = [{"role": "user", "content": "weather in Paris?"},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                                "input": {"city": "Paris"}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]
    for model in MODELS:
        m = client.messages.create(model=model, max_tokens=3, messages=turns, tools=tools,  # type: ignore[arg-type]
                                   tool_choice={"type": "auto"})
        assert m.stop_reason == "max_tokens" and len(m.content[0].text.split()) == 3  # type: ignore[union-attr]


def test_errors_in_anthropic_shape(mgr: ManagerProcess, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="no-such-model", max_tokens=4, messages=HI)  # type: ignore[arg-type]
    assert nf.value.body["type"] == "error" and nf.value.body["error"]["type"] == "not_found_error"  # type: ignore
    with pytest.raises(anthropic.BadRequestError) as br:
        client.post("/v1/messages", body={"model": TRANSLATED, "messages": HI}, cast_to=httpx.Response)
    assert br.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in br.value.body["error"]["message"]  # type: ignore[index]
    bad = anthropic.Anthropic(base_url=mgr.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as au:
        bad.messages.create(model=TRANSLATED, max_tokens=4, messages=HI)  # type: ignore[arg-type]
    assert au.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError) as un:  # the SDK's class for any 5xx
        client.messages.create(model="too-big", max_tokens=4, messages=HI)  # type: ignore[arg-type]
    assert un.value.status_code == 503 and un.value.body["error"]["type"] == "overloaded_error"  # type: ignore
    r = httpx.post(mgr.url + "/v1/messages", content=b"{not json", timeout=10,
                   headers={"x-api-key": USER, "anthropic-version": "1999-01-01", "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "error"


def test_anthropic_version_is_accepted_whatever_it_says(mgr: ManagerProcess) -> None:
    r = httpx.post(mgr.url + "/v1/messages?beta=true", timeout=10,  # Claude Code's query and beta header
                   json={"model": TRANSLATED, "max_tokens": 2, "messages": HI},
                   headers={"x-api-key": USER, "anthropic-version": "not-a-date", "anthropic-beta": "x-2025"})
    assert r.status_code == 200 and r.json()["type"] == "message"
    assert fr.count_words(r.json()["content"][0]["text"]) == 2


TOOL_BACKEND = '''
import json, sys
import tornado.ioloop, tornado.web

CALL = {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}

class Health(tornado.web.RequestHandler):
    def get(self):
        self.finish({"status": "ok"})

class Chat(tornado.web.RequestHandler):
    def post(self):
        body = json.loads(self.request.body)
        assert body["tools"][0]["function"]["name"] == "get_weather", body
        assert body["tool_choice"] == "required", body
        usage = {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}
        if not body.get("stream"):
            return self.finish({"id": "c1", "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "tool_calls",
                 "message": {"role": "assistant", "content": None, "tool_calls": [CALL]}}]})
        self.set_header("Content-Type", "text/event-stream")
        args = CALL["function"]["arguments"]
        deltas = [{"role": "assistant", "content": None},
                  {"tool_calls": [{**CALL, "index": 0, "function": {"name": "get_weather", "arguments": ""}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": args[:9]}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": args[9:]}}]}]
        for i, delta in enumerate(deltas):
            finish = "tool_calls" if i == len(deltas) - 1 else None
            self.write("data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                       + "\\n\\n")
        self.write("data: " + json.dumps({"choices": [], "usage": usage}) + "\\n\\ndata: [DONE]\\n\\n")

app = tornado.web.Application([(r"/health", Health), (r"/v1/chat/completions", Chat)])
app.listen(int(sys.argv[1]), "127.0.0.1")
tornado.ioloop.IOLoop.current().start()
'''


@pytest.fixture(scope="module")
def tool_mgr(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A manager whose one model is a server that always calls get_weather (the fake backend never calls tools)."""
    tmp = tmp_path_factory.mktemp("anthropic-tools")
    (tmp / "tool_backend.py").write_text(TOOL_BACKEND)
    model = fake_model("Chat", protocols=["openai"])
    model["command"] = [sys.executable, str(tmp / "tool_backend.py"), "${PORT}"]
    m = ManagerProcess(tmp, config_doc({"tooler": model}))
    yield m
    m.stop()


WEATHER = [{"name": "get_weather", "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_tool_use_answers_whole_and_streamed(tool_mgr: ManagerProcess) -> None:
    client = anthropic.Anthropic(base_url=tool_mgr.url, api_key="any", max_retries=0)
    ask = {"model": "tooler", "max_tokens": 50, "messages": [{"role": "user", "content": "weather in Paris?"}],
           "tools": WEATHER, "tool_choice": {"type": "any"}}
    m = client.messages.create(**ask)  # type: ignore[arg-type]
    assert m.stop_reason == "tool_use" and [b.type for b in m.content] == ["tool_use"]
    block = m.content[0]
    assert (block.id, block.name, block.input) == ("call_7", "get_weather", {"city": "Paris"})  # type: ignore
    assert (m.usage.input_tokens, m.usage.output_tokens) == (30, 9)
    with client.messages.stream(**ask) as stream:  # type: ignore[arg-type]
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds  # the SDK's own event for input_json_delta
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Paris"}  # type: ignore
    assert (final.usage.input_tokens, final.usage.output_tokens) == (30, 9)


def test_count_tokens_estimated_without_a_tokenizer(tool_mgr: ManagerProcess) -> None:
    """A server with no /tokenize (404): 4 characters a token of the turns' text, not an error."""
    client = anthropic.Anthropic(base_url=tool_mgr.url, api_key="any", max_retries=0)
    r = client.messages.count_tokens(model="tooler", messages=[{"role": "user", "content": "weather in Paris?"}])
    assert r.input_tokens == (len("user: weather in Paris?") + 3) // 4
