"""Ollama's API through a real manager process and fake-backend model processes, with the official ``ollama``
library: chat, generate, embed, the read-only endpoints, errors, keep_alive and API keys."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import httpx
import ollama
import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until

ADMIN = "sk-admin-ollama"
USER = "sk-user-ollama"
SCOPED = "sk-scoped-ollama"
HI = [{"role": "user", "content": "hello there"}]
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Any:
    doc = config_doc({
        "demo-chat": fake_model("Chat", aliases=["chatty"], memory={"gpu a": 1000}),
        "demo-base": fake_model("Base", memory={"gpu a": 500}),
        "demo-embed": fake_model("Embedding", memory={"gpu a": 300}),
        "demo-keep": fake_model("Chat", memory={"gpu a": 200}),
        "demo-slow": fake_model("Chat", memory={"gpu a": 100}, args=["--tokens-per-second", "20"]),
    }, gpus={"gpu a": 24000}, admin_key=ADMIN, flush_interval=0.2, api_keys=[{"key": USER, "name": "user"},
                                          {"key": SCOPED, "name": "scoped", "models": ["chatty"]}])
    m = ManagerProcess(tmp_path_factory.mktemp("ollama"), doc)
    m.http.headers["Authorization"] = f"Bearer {ADMIN}"
    yield m
    m.stop()


@pytest.fixture
def client(mgr: ManagerProcess) -> ollama.Client:
    return ollama.Client(host=mgr.url, headers={"Authorization": f"Bearer {USER}"})


def openai_text(mgr: ManagerProcess, model: str, n: int, **request: Any) -> str:
    """What the same model answers through /v1 (the fake backend is deterministic)."""
    oa = openai.OpenAI(base_url=mgr.url + "/v1", api_key=USER, max_retries=0)
    if "messages" in request:
        return oa.chat.completions.create(model=model, max_tokens=n, **request).choices[0].message.content or ""
    return oa.completions.create(model=model, max_tokens=n, **request).choices[0].text


def rows(mgr: ManagerProcess, endpoint: str) -> list[dict[str, Any]]:
    recent = mgr.http.get("/api/usage/recent", params={"limit": 200}).json()["requests"]
    return [r for r in recent if r["endpoint"] == endpoint]


def assert_final(part: Any, eval_count: int) -> None:
    assert part.done is True and part.eval_count == eval_count and part.prompt_eval_count > 0
    assert part.total_duration > 0 and part.total_duration >= part.load_duration >= 0
    assert part.eval_duration >= 0 and part.prompt_eval_duration >= 0


def test_chat_plain_is_the_openai_answer_and_is_counted(mgr: ManagerProcess, client: ollama.Client) -> None:
    before = len(rows(mgr, "api/chat"))
    r = client.chat(model="demo-chat:latest", messages=HI, options={"num_predict": 5, "temperature": 0})
    assert r.model == "demo-chat:latest" and r.message.role == "assistant"
    assert r.message.content == openai_text(mgr, "demo-chat", 5, messages=HI)
    assert len(r.message.content.split()) == 5 and r.done_reason == "length"
    assert_final(r, 5)
    assert datetime.fromisoformat(r.created_at.replace("Z", "+00:00")) <= datetime.now(timezone.utc)
    found = wait_until(lambda: len(rows(mgr, "api/chat")) > before and rows(mgr, "api/chat"))
    assert found, "no usage row for api/chat"
    row = found[-1]
    assert (row["model"], row["completion_tokens"], row["prompt_tokens"]) == ("demo-chat", 5, r.prompt_eval_count)
    assert row["key_id"] == "cfg:user" and row["alias"] == "demo-chat" and not row["estimated"]


def test_chat_streaming_is_ndjson_with_a_final_line(mgr: ManagerProcess, client: ollama.Client) -> None:
    parts = list(client.chat(model="chatty", messages=HI, stream=True, options={"num_predict": 6}))
    assert len(parts) == 7 and [p.done for p in parts] == [False] * 6 + [True]
    text = "".join(p.message.content or "" for p in parts)
    assert text == openai_text(mgr, "chatty", 6, messages=HI)
    assert_final(parts[-1], 6)
    assert parts[-1].done_reason == "length" and parts[-1].model == "chatty"
    body = {"model": "demo-chat", "messages": HI, "options": {"num_predict": 2}}  # no "stream": true by default
    with httpx.stream("POST", mgr.url + "/api/chat", json=body, headers={"Authorization": f"Bearer {USER}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        assert len(list(r.iter_lines())) == 3


def test_stream_lines_are_relayed_as_they_arrive(mgr: ManagerProcess, client: ollama.Client) -> None:
    """10 tokens at 20 tokens/s: the first line must reach the client long before the last."""
    client.generate(model="demo-slow", prompt="warm up", options={"num_predict": 1})
    t0 = time.monotonic()
    arrivals = [time.monotonic() - t0 for _ in client.generate(model="demo-slow", prompt="x", stream=True,
                                                              options={"num_predict": 10})]
    assert len(arrivals) == 11 and arrivals[0] < arrivals[-1] / 2, arrivals


def test_chat_with_images_options_and_format(client: ollama.Client) -> None:
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "what is this", "images": [PIXEL]}]
    r = client.chat(model="demo-chat", messages=messages, format="json", options={"num_predict": 3, "seed": 7,
                                                                                   "stop": ["zzz"], "top_k": 5})
    assert len(r.message.content.split()) == 3 and r.eval_count == 3


def test_generate_plain_and_streaming(mgr: ManagerProcess, client: ollama.Client) -> None:
    r = client.generate(model="demo-chat", prompt="tell me", system="you are terse", options={"num_predict": 4})
    expected = openai_text(mgr, "demo-chat", 4, messages=[{"role": "system", "content": "you are terse"},
                                                         {"role": "user", "content": "tell me"}])
    assert r.response == expected and r.done_reason == "length"
    assert_final(r, 4)
    parts = list(client.generate(model="demo-base", prompt="Once upon a time", stream=True,
                                 options={"num_predict": 5}))
    assert [p.done for p in parts] == [False] * 5 + [True]
    assert "".join(p.response for p in parts) == openai_text(mgr, "demo-base", 5, prompt="Once upon a time")
    assert_final(parts[-1], 5)
    raw = client.generate(model="demo-chat", prompt="raw text", raw=True, options={"num_predict": 2})
    assert raw.response == openai_text(mgr, "demo-chat", 2, prompt="raw text")
    assert wait_until(lambda: rows(mgr, "api/generate")), "no usage row for api/generate"


def test_embed_and_embeddings(mgr: ManagerProcess, client: ollama.Client) -> None:
    r = client.embed(model="demo-embed", input=["alpha", "beta"])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 64 and r.embeddings[0] != r.embeddings[1]
    assert r.prompt_eval_count > 0 and r.model == "demo-embed"
    one = client.embed(model="demo-embed:latest", input="alpha")
    assert one.embeddings == [r.embeddings[0]]
    old = client.embeddings(model="demo-embed", prompt="alpha")
    assert list(old.embedding) == list(r.embeddings[0])
    assert wait_until(lambda: rows(mgr, "api/embed") and rows(mgr, "api/embeddings")), "no usage rows for embeddings"


def test_list_show_version(mgr: ManagerProcess, client: ollama.Client) -> None:
    models = {m.model: m for m in client.list().models}
    assert set(models) == {"demo-chat:latest", "demo-base:latest", "demo-embed:latest", "demo-keep:latest",
                           "demo-slow:latest"}
    chat = models["demo-chat:latest"]
    assert chat.size == 1000 * 2**20 and len(chat.digest or "") == 64 and chat.details.family == "chat"
    assert client.show("demo-chat").capabilities == ["completion", "tools"]
    assert client.show("demo-base:latest").capabilities == ["completion"]
    assert client.show("demo-embed").capabilities == ["embedding"]
    r = httpx.get(mgr.url + "/api/version", headers={"Authorization": f"Bearer {USER}"})
    assert r.status_code == 200 and r.json()["version"]


def test_ps_lists_loaded_models_with_their_expiry(mgr: ManagerProcess, client: ollama.Client) -> None:
    client.chat(model="demo-chat", messages=HI, options={"num_predict": 1}, keep_alive="10m")
    loaded = {m.model: m for m in client.ps().models}
    assert "demo-chat:latest" in loaded
    row = loaded["demo-chat:latest"]
    left = row.expires_at.timestamp() - time.time()
    assert 590 < left <= 600, left
    assert row.size_vram == 1000 * 2**20
    client.chat(model="demo-chat", messages=HI, options={"num_predict": 1}, keep_alive=-1)
    row = next(m for m in client.ps().models if m.model == "demo-chat:latest")
    assert row.expires_at.year > 2300
    client.chat(model="demo-chat", messages=HI, options={"num_predict": 1})  # no keep_alive: the config's ttl
    row = next(m for m in client.ps().models if m.model == "demo-chat:latest")
    assert 3590 < row.expires_at.timestamp() - time.time() <= 3600  # alive_time 60 (minutes)


def test_errors_are_ollamas(mgr: ManagerProcess, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="nope", messages=HI)
    assert err.value.status_code == 404 and "nope" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        list(client.generate(model="nope:latest", prompt="x", stream=True))
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.show("nope")
    assert err.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(model="demo-chat", input="x")
    assert err.value.status_code == 400 and "Chat model" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="demo-chat", messages=HI, keep_alive="soon")
    assert err.value.status_code == 400 and "keep_alive" in err.value.error


def test_keep_alive_zero_unloads_after_the_request(mgr: ManagerProcess, client: ollama.Client) -> None:
    r = client.chat(model="demo-keep", messages=HI, options={"num_predict": 2}, keep_alive=0)
    assert len(r.message.content.split()) == 2
    mgr.wait_state("demo-keep", "stopped")
    loaded = client.generate(model="demo-keep")  # an empty request loads the model...
    assert loaded.done and loaded.done_reason == "load" and mgr.models()["demo-keep"]["state"] == "ready"
    gone = client.generate(model="demo-keep", keep_alive=0)  # ...and with keep_alive 0 unloads it
    assert gone.done_reason == "unload"
    mgr.wait_state("demo-keep", "stopped")


def test_api_keys_apply(mgr: ManagerProcess) -> None:
    anonymous = ollama.Client(host=mgr.url)
    for call in (lambda: anonymous.chat(model="demo-chat", messages=HI), anonymous.list, anonymous.ps,
                 lambda: anonymous.show("demo-chat")):
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 401 and "API key" in err.value.error
    assert httpx.get(mgr.url + "/api/version").status_code == 401
    wrong = ollama.Client(host=mgr.url, headers={"Authorization": "Bearer sk-wrong"})
    with pytest.raises(ollama.ResponseError) as err:
        wrong.generate(model="demo-chat", prompt="x")
    assert err.value.status_code == 401


def test_a_scoped_key_sees_its_models_only(mgr: ManagerProcess) -> None:
    scoped = ollama.Client(host=mgr.url, headers={"Authorization": f"Bearer {SCOPED}"})
    assert [m.model for m in scoped.list().models] == ["demo-chat:latest"]
    assert scoped.show("demo-chat:latest").capabilities == ["completion", "tools"]
    with pytest.raises(ollama.ResponseError) as err:
        scoped.show("demo-base")
    assert err.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as err:
        scoped.generate(model="demo-base", prompt="x")
    assert err.value.status_code == 403 and "may not use model" in err.value.error


def test_other_methods_on_inference_paths(mgr: ManagerProcess) -> None:
    r = httpx.get(mgr.url + "/api/chat")
    assert r.status_code == 405 and "GET /api/chat" in r.json()["error"]
    r = httpx.options(mgr.url + "/api/generate")
    assert r.status_code == 204
