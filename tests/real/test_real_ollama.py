"""Ollama's API in front of llama.cpp's real llama-server, with the official ``ollama`` library.

llama-server does not speak Ollama's API: every request is translated. At temperature 0 the answers must be what
/v1 answers for the same request, token counts and llama-server's timings included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ollama
import openai
import pytest
from helpers import ManagerProcess, config_doc, free_port
from real_helpers import kill_pids, llama_pids

from llm_manager.demo.real import RealLlama, launch_script

pytestmark = pytest.mark.real

CHAT, EMBED = "smol-chat", "smol-embed"
POEM = [{"role": "user", "content": "Write a short poem about the sea."}]


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory, llama: RealLlama) -> Iterator[ManagerProcess]:
    tmp = tmp_path_factory.mktemp("real-ollama")
    ports = {CHAT: free_port(), EMBED: free_port()}
    models: dict[str, Any] = {}
    for name, mode in ((CHAT, "Chat"), (EMBED, "Embedding")):
        (tmp / f"{name}.sh").write_text(launch_script(name, embeddings=mode == "Embedding", threads=1, llama=llama))
        (tmp / f"{name}.sh").chmod(0o755)
        models[name] = {"aliases": [], "mode": mode, "port": ports[name], "auto_start": False,
                        "CPU": {"required_devices": [], "bat_path": f"{name}.sh", "memory_mb": {}}}
    m = ManagerProcess(tmp, config_doc(models, TokenTracker=["Chat"]))
    try:
        yield m
    finally:
        m.stop()
        kill_pids(llama_pids(set(ports.values()), llama.server))


@pytest.fixture(scope="module")
def client(mgr: ManagerProcess) -> ollama.Client:
    return ollama.Client(host=mgr.url, timeout=120)


@pytest.fixture(scope="module")
def oa(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_chat_plain_and_streamed_equal_chat_completions(client: ollama.Client, oa: openai.OpenAI) -> None:
    expected = oa.chat.completions.create(model=CHAT, messages=POEM, max_tokens=16, temperature=0)  # type: ignore
    r = client.chat(model=f"{CHAT}:latest", messages=POEM, options={"num_predict": 16, "temperature": 0})
    assert r.message.content == expected.choices[0].message.content
    assert (r.prompt_eval_count, r.eval_count, r.done_reason) == (expected.usage.prompt_tokens, 16, "length")
    assert r.eval_duration > 0 and r.total_duration > r.eval_duration  # llama-server's timings, in ns
    parts = list(client.chat(model=CHAT, messages=POEM, stream=True, options={"num_predict": 16, "temperature": 0}))
    assert "".join(p.message.content or "" for p in parts) == r.message.content and len(parts) > 2
    assert parts[-1].done and parts[-1].eval_count == 16


def test_generate_uses_the_chat_template(client: ollama.Client, oa: openai.OpenAI) -> None:
    expected = oa.chat.completions.create(model=CHAT, messages=POEM, max_tokens=12, temperature=0)  # type: ignore
    r = client.generate(model=CHAT, prompt=POEM[0]["content"], options={"num_predict": 12, "temperature": 0})
    assert r.response == expected.choices[0].message.content
    raw = client.generate(model=CHAT, prompt="The sea is", raw=True, options={"num_predict": 8, "temperature": 0})
    same = oa.completions.create(model=CHAT, prompt="The sea is", max_tokens=8, temperature=0)
    assert raw.response == same.choices[0].text


def test_embed_equals_embeddings(client: ollama.Client, oa: openai.OpenAI) -> None:
    expected = oa.embeddings.create(model=EMBED, input=["the sea", "a ship"])
    r = client.embed(model=EMBED, input=["the sea", "a ship"])
    assert len(r.embeddings) == 2
    for got, want in zip(r.embeddings, expected.data, strict=True):
        assert got == pytest.approx(want.embedding, abs=1e-6)
    assert list(client.embeddings(model=EMBED, prompt="the sea").embedding) == pytest.approx(r.embeddings[0],
                                                                                              abs=1e-6)
