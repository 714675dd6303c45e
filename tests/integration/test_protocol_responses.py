"""OpenAI's Responses API through a real manager process, with the official openai SDK: a translated model (its
server speaks chat completions only) and a pass-through one (the fake backend serves /v1/responses natively)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until
from sqlalchemy import text
from test_usage_store import url  # noqa: F401 (the store fixture: SQLite and PostgreSQL; conftest has PostgreSQL)

from llm_manager.accounting.store import UsageStore
from llm_manager.testing import fake_responses as fr

TRANSLATED, NATIVE = "chat-model", "native-model"
TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "the weather in a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("responses")
    doc = config_doc({
        TRANSLATED: fake_model("Chat", aliases=["gpt-r"], protocols=["openai"]),
        NATIVE: fake_model("Chat", protocols=["openai", "responses"]),
    }, flush_interval=0.05)
    m = ManagerProcess(tmp, doc)
    yield m
    m.stop()


@pytest.fixture
def client(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def chat_text(client: openai.OpenAI, model: str, messages: list[dict[str, Any]], n: int) -> str:
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=n)  # type: ignore[arg-type]
    return r.choices[0].message.content or ""


def recent(mgr: ManagerProcess, n: int) -> list[dict[str, Any]]:
    return mgr.http.get("/api/usage/recent", params={"limit": n}).json()["requests"]


@pytest.mark.parametrize("model", [TRANSLATED, NATIVE])
def test_create_with_instructions_is_chat_with_a_system_message(client: openai.OpenAI, mgr: ManagerProcess,
                                                                model: str) -> None:
    r = client.responses.create(model=model, instructions="be brief", input="tell me a story",
                                max_output_tokens=6, temperature=0)
    expected = chat_text(client, model, [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": "tell me a story"}], 6)
    assert r.id.startswith("resp_") and r.object == "response"
    assert r.status == ("incomplete" if model == TRANSLATED else "completed")  # the native server never says why
    assert r.output_text == expected and len(expected.split()) == 6
    assert r.usage is not None and r.usage.output_tokens == 6
    assert r.usage.total_tokens == r.usage.input_tokens + 6
    row = wait_until(lambda: next((x for x in recent(mgr, 5) if x["endpoint"] == "responses"
                                   and x["model"] == model), None))
    assert row["completion_tokens"] == 6 and not row["estimated"]
    assert row["prompt_tokens"] == r.usage.input_tokens


@pytest.mark.parametrize("model", [TRANSLATED, NATIVE])
def test_stream_events_and_final_response(client: openai.OpenAI, mgr: ManagerProcess, model: str) -> None:
    events = list(client.responses.create(model=model, input="stream me", max_output_tokens=5, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    for kind in ("response.output_item.added", "response.content_part.added", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"):
        assert kind in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == chat_text(client, model, [{"role": "user", "content": "stream me"}], 5)
    assert final.type in ("response.completed", "response.incomplete")
    assert final.response.output_text == text and final.response.usage.output_tokens == 5
    # the SDK's helper accumulates the same events (it needs output_index/content_index on each)
    with client.responses.stream(model=model, input="stream me", max_output_tokens=5) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert deltas == text
    row = wait_until(lambda: next((x for x in recent(mgr, 5) if x["endpoint"] == "responses" and x["stream"]
                                   and x["model"] == model), None))
    assert row["completion_tokens"] == 5 and not row["estimated"]


@pytest.mark.parametrize("model", [TRANSLATED, NATIVE])
def test_previous_response_id_continues_and_retrieve_returns_it(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(model=model, input="first question", max_output_tokens=4)
    second = client.responses.create(model=model, previous_response_id=first.id, input="and then?",
                                     max_output_tokens=4)
    history = [{"role": "user", "content": "first question"}, {"role": "assistant", "content": first.output_text},
               {"role": "user", "content": "and then?"}]
    assert second.output_text == chat_text(client, model, history, 4)
    assert second.output_text != client.responses.create(model=model, input="and then?", max_output_tokens=4,
                                                         store=False).output_text
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == second.output_text
    items = client.responses.input_items.list(second.id).data
    assert len(items) == 3
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, previous_response_id="resp_unknown", input="x")


def test_store_false_is_not_retrievable_and_delete_forgets(client: openai.OpenAI) -> None:
    r = client.responses.create(model=TRANSLATED, input="forget me", max_output_tokens=2, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    kept = client.responses.create(model=TRANSLATED, input="keep me", max_output_tokens=2)
    assert client.responses.retrieve(kept.id).id == kept.id
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)


def test_function_call_round_trip_through_the_native_server(client: openai.OpenAI) -> None:
    """The fake backend's /v1/responses calls a function when tool_choice names it; its output goes back in."""
    r = client.responses.create(model=NATIVE, input="weather in Oslo?", tools=TOOLS,
                                tool_choice={"type": "function", "name": "get_weather"})
    call = r.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    follow = client.responses.create(model=NATIVE, previous_response_id=r.id, tools=TOOLS, max_output_tokens=3,
                                     input=[{"type": "function_call_output", "call_id": call.call_id,
                                             "output": "sunny"}])
    history = [{"role": "user", "content": "weather in Oslo?"}, {"role": "assistant", "content": ""},
               {"role": "tool", "content": "sunny"}]
    assert follow.output_text == chat_text(client, NATIVE, history, 3)
    with client.responses.stream(model=NATIVE, input="weather?", tools=TOOLS, tool_choice="required") as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    assert args == '{"x": 1}' and final.output[0].type == "function_call"


def test_function_items_are_translated_to_chat(client: openai.OpenAI) -> None:
    """A translated model gets the tools nested and the call/output items as assistant tool_calls + a tool message
    (the fake chat server answers from the prompt it built from exactly those messages)."""
    items: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": "weather in Oslo?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
    r = client.responses.create(model="gpt-r", input=items, tools=TOOLS, tool_choice="auto", max_output_tokens=4)
    history = [{"role": "user", "content": "weather in Oslo?"}, {"role": "assistant", "content": None},
               {"role": "tool", "content": "sunny"}]
    assert r.output_text == chat_text(client, TRANSLATED, history, 4)
    assert r.tools[0].name == "get_weather" and r.model == TRANSLATED


def test_input_tokens_native_and_by_the_tokenizer(mgr: ManagerProcess) -> None:
    native = mgr.http.post("/v1/responses/input_tokens", json={"model": NATIVE, "input": "one two three"}).json()
    assert native == {"input_tokens": 3 + 4, "object": "response.input_tokens"}  # the fake's words + 4 per message
    translated = mgr.http.post("/v1/responses/input_tokens", json={"model": TRANSLATED, "input": "one two three"})
    assert translated.status_code == 200
    # the fake's /tokenize: one token per word of "user: one two three"
    assert translated.json() == {"object": "response.input_tokens", "input_tokens": 4}
    def counted() -> list[dict[str, Any]] | None:
        rows = [x for x in recent(mgr, 5) if x["endpoint"] == "responses/input_tokens"]
        return rows if len(rows) >= 2 else None

    rows = wait_until(counted)
    assert {x["model"] for x in rows} == {NATIVE, TRANSLATED}
    assert all(x["prompt_tokens"] == x["completion_tokens"] == 0 and not x["estimated"] for x in rows)


def test_errors_keep_openai_shape(mgr: ManagerProcess) -> None:
    r = mgr.http.post("/v1/responses", json={"model": TRANSLATED, "input": [{"type": "item_reference", "id": "x"}]})
    assert r.status_code == 400 and "item_reference" in r.json()["error"]["message"]
    r = mgr.http.post("/v1/responses", json={"model": "no-such-model", "input": "x"})
    assert r.status_code == 404 and "error" in r.json()
    assert mgr.http.get("/v1/responses/resp_missing").status_code == 404


def test_fake_native_answer_matches_the_chat_prompt() -> None:
    """The fake's /v1/responses generates from the same prompt as its chat endpoint (what the tests above rely on)."""
    from llm_manager.testing.fake_openresponses import answer

    final, _ = answer("m", {"input": "hello", "max_output_tokens": 3}, 16)
    assert final["output"][0]["content"][0]["text"] == "".join(fr.generate_tokens("user: hello", 3))


def test_store_keeps_deletes_and_expires_responses(url: str | None, tmp_path: Path) -> None:  # noqa: F811
    with UsageStore(url, tmp_path, flush_interval=3600) as store:
        store.save_response("resp_old", "m", [{"role": "user", "content": "a"}], {"id": "resp_old", "output": []})
        with store.engine.begin() as conn:  # written 31 days ago
            conn.execute(text("UPDATE stored_response SET created_at = :t WHERE id = 'resp_old'"),
                         {"t": time.time() - 31 * 86400})
        store.save_response("resp_kept", "m", [{"role": "user", "content": "b"}], {"id": "resp_kept", "usage": {}},
                            retention_days=30)
        assert store.load_response("resp_old") is None  # gone with the next write past retention
        assert store.load_response("resp_kept") == ("m", [{"role": "user", "content": "b"}],
                                                     {"id": "resp_kept", "usage": {}})
        assert store.delete_response("resp_kept") and not store.delete_response("resp_kept")
        assert store.load_response("resp_kept") is None


def test_manager_logged_no_traceback(mgr: ManagerProcess) -> None:
    """Last: every answer above was written cleanly (e.g. nothing written after a whole answer's Content-Length)."""
    assert "Traceback" not in mgr.log_path.read_text()
