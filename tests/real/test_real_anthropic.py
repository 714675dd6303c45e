"""Anthropic's Messages API in front of llama.cpp's real llama-server, with the official anthropic SDK.

Two models over the same llama-server binary and weights: one relayed as it is (llama-server speaks the protocol,
``protocols: ["openai", "anthropic"]``), one translated to chat completions (``protocols: ["openai"]``). At
temperature 0 both must write exactly what /v1/chat/completions writes for the same conversation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from helpers import ManagerProcess, config_doc, free_port, wait_until
from real_helpers import kill_pids, llama_pids

from llm_manager.demo.real import RealLlama, launch_script

pytestmark = pytest.mark.real

NATIVE, TRANSLATED = "smol-native", "smol-translated"
POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
SYSTEM = "You are a pirate."
T0 = {"temperature": 0}  # this SDK has no sampling arguments; the API and llama-server take them


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory, llama: RealLlama) -> Iterator[ManagerProcess]:
    tmp = tmp_path_factory.mktemp("real-anthropic")
    ports = {NATIVE: free_port(), TRANSLATED: free_port()}
    models: dict[str, Any] = {}
    for name, protocols in ((NATIVE, ["openai", "anthropic"]), (TRANSLATED, ["openai"])):
        (tmp / f"{name}.sh").write_text(launch_script(name, threads=1, llama=llama))  # LLAMA_ARG_REPACK: conftest
        (tmp / f"{name}.sh").chmod(0o755)
        models[name] = {"aliases": [], "mode": "Chat", "port": ports[name], "auto_start": False,
                        "protocols": protocols,
                        "CPU": {"required_devices": [], "bat_path": f"{name}.sh", "memory_mb": {}}}
    m = ManagerProcess(tmp, config_doc(models, TokenTracker=["Chat"]))
    try:
        yield m
    finally:
        m.stop()
        kill_pids(llama_pids(set(ports.values()), llama.server))


@pytest.fixture(scope="module")
def client(mgr: ManagerProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mgr.url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def oa(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def chat(oa: openai.OpenAI, model: str, messages: list[dict[str, Any]], **kw: Any) -> Any:
    return oa.chat.completions.create(model=model, messages=messages, temperature=0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
def test_message_text_equals_chat_text(mgr: ManagerProcess, client: anthropic.Anthropic, oa: openai.OpenAI,
                                       model: str) -> None:
    expected = chat(oa, model, POEM, max_tokens=16)
    m = client.messages.create(model=model, max_tokens=16, messages=POEM, extra_body=T0)  # type: ignore[arg-type]
    assert m.content[0].text == expected.choices[0].message.content  # type: ignore[union-attr]
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 16
    # llama-server splits its input count into cached and new tokens; the gateway's row adds them up
    assert m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0) == expected.usage.prompt_tokens

    def row() -> dict[str, Any] | None:
        recent = mgr.http.get("/api/usage/recent", params={"limit": 20}).json()["requests"]
        rows = [r for r in recent if r["endpoint"] == "messages" and r["model"] == model]
        return rows[-1] if rows else None

    found = wait_until(row)
    assert found, "no usage row for /v1/messages"
    assert (found["prompt_tokens"], found["completion_tokens"]) == (expected.usage.prompt_tokens, 16)
    assert not found["estimated"]


@pytest.mark.parametrize("model", [NATIVE, TRANSLATED])
def test_system_and_stream_equal_chat(client: anthropic.Anthropic, oa: openai.OpenAI, model: str) -> None:
    turns = [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Arr, hello."},
             {"role": "user", "content": [{"type": "text", "text": "Where is your ship?"}]}]
    as_chat = [{"role": "system", "content": SYSTEM}, turns[0], turns[1],
               {"role": "user", "content": "Where is your ship?"}]
    expected = chat(oa, model, as_chat, max_tokens=12).choices[0].message.content
    with client.messages.stream(model=model, max_tokens=12, extra_body=T0, system=SYSTEM,
                                messages=turns) as stream:  # type: ignore[arg-type]
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == expected and len(pieces) > 1
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 12


def test_both_paths_write_the_same(client: anthropic.Anthropic) -> None:
    texts = {model: client.messages.create(model=model, max_tokens=16, extra_body=T0,  # type: ignore[arg-type]
                                           messages=POEM).content[0].text for model in (NATIVE, TRANSLATED)}
    assert texts[NATIVE] == texts[TRANSLATED], texts


def test_count_tokens(client: anthropic.Anthropic, oa: openai.OpenAI) -> None:
    """Relayed: llama-server's count, chat template included. Translated: its /tokenize of the turns' text,
    so fewer (no template tokens) but more than none."""
    prompt = chat(oa, NATIVE, POEM, max_tokens=1).usage.prompt_tokens
    native = client.messages.count_tokens(model=NATIVE, messages=POEM).input_tokens  # type: ignore[arg-type]
    translated = client.messages.count_tokens(model=TRANSLATED, messages=POEM).input_tokens  # type: ignore
    assert native == prompt
    assert 8 <= translated < prompt  # "user: Write a short poem about the sea." is about 10 tokens


def test_tools_are_accepted_by_both(client: anthropic.Anthropic) -> None:
    """SmolLM2's template has no tool-call format: the model answers in text, but the request passes both ways."""
    tools = [{"name": "get_weather", "description": "Weather of a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    for model in (NATIVE, TRANSLATED):
        m = client.messages.create(model=model, max_tokens=8, extra_body=T0, messages=ask,  # type: ignore[arg-type]
                                   tools=tools, tool_choice={"type": "auto"})  # type: ignore[arg-type]
        assert m.content and m.stop_reason in ("max_tokens", "end_turn", "tool_use")
