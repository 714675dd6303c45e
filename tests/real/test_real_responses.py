"""The Responses API in front of llama.cpp's real llama-server: relayed natively (llama-server speaks it) and
translated to chat completions; at temperature 0 both give /v1/chat/completions' text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from helpers import ManagerProcess, config_doc, free_port, wait_until
from real_helpers import kill_pids, llama_pids

from llm_manager.demo.real import CHAT_MODEL, RealLlama, write_real_models

pytestmark = pytest.mark.real

NATIVE, TRANSLATED = "smol-native", "smol-translated"
POEM = "Write a short poem about the sea."


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory, llama: RealLlama) -> Iterator[ManagerProcess]:
    tmp = tmp_path_factory.mktemp("real-responses")
    ports = {free_port(), free_port()}
    native_port, translated_port = sorted(ports)
    chat = write_real_models(tmp, chat_port=native_port, llama=llama, threads=1, cpu_memory_mb=None,
                             pricing=False)[CHAT_MODEL]
    models = {NATIVE: {**chat, "aliases": [], "protocols": ["openai", "responses"]},
              TRANSLATED: {**chat, "aliases": [], "port": translated_port, "protocols": ["openai"]}}
    m = ManagerProcess(tmp, config_doc(models, flush_interval=0.05))
    try:
        yield m
    finally:
        m.stop()
        kill_pids(llama_pids(ports, llama.server))


@pytest.fixture(scope="module")
def client(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat_text(client: openai.OpenAI, model: str, messages: list[dict[str, Any]], n: int) -> str:
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=n, temperature=0)  # type: ignore[arg-type]
    return r.choices[0].message.content or ""


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
def test_text_equals_chat_completions(client: openai.OpenAI, mgr: ManagerProcess, model: str) -> None:
    expected = chat_text(client, model, [{"role": "system", "content": "You are a poet."},
                                         {"role": "user", "content": POEM}], 16)
    r = client.responses.create(model=model, instructions="You are a poet.", input=POEM, max_output_tokens=16,
                                temperature=0)
    assert expected and r.output_text == expected
    # which path answered: llama-server always says "completed"; the translation says why it stopped, like OpenAI
    assert (r.status, r.incomplete_details) == (("completed", None) if model == NATIVE else
                                                ("incomplete", openai.types.responses.response.IncompleteDetails(
                                                    reason="max_output_tokens")))
    assert r.usage is not None and r.usage.output_tokens == 16
    row = wait_until(lambda: next((x for x in mgr.http.get("/api/usage/recent", params={"limit": 5}).json()
                                   ["requests"] if x["endpoint"] == "responses" and x["model"] == model), None))
    assert row["completion_tokens"] == 16 and not row["estimated"]
    assert row["prompt_tokens"] == r.usage.input_tokens > 0
    # llama-server's native count is what the generation used; translated, its /tokenize counts the text alone
    count = mgr.http.post("/v1/responses/input_tokens", json={"model": model, "instructions": "You are a poet.",
                                                               "input": POEM}).json()
    assert "estimated" not in count and count["object"] == "response.input_tokens"
    if model == NATIVE:
        assert count["input_tokens"] == r.usage.input_tokens
    else:
        assert 0 < count["input_tokens"] < r.usage.input_tokens  # the chat template's tokens are not in it


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
def test_stream_and_sdk_helper(client: openai.OpenAI, model: str) -> None:
    expected = chat_text(client, model, [{"role": "user", "content": POEM}], 12)
    with client.responses.stream(model=model, input=POEM, max_output_tokens=12, temperature=0) as stream:
        events = list(stream)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == expected
    assert [e.sequence_number for e in events] == list(range(len(events)))
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.usage is not None and last.response.usage.output_tokens == 12


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
def test_previous_response_id_on_a_stateless_server(client: openai.OpenAI, model: str) -> None:
    """llama-server refuses previous_response_id itself: the manager sends the stored conversation instead."""
    first = client.responses.create(model=model, input="Name a color.", max_output_tokens=8, temperature=0)
    second = client.responses.create(model=model, previous_response_id=first.id, input="Name another one.",
                                     max_output_tokens=8, temperature=0)
    history = [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": first.output_text},
               {"role": "user", "content": "Name another one."}]
    assert second.output_text == chat_text(client, model, history, 8)
    assert client.responses.retrieve(second.id).output_text == second.output_text
