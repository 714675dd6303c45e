"""The OpenAI-compatible surface through a real manager process and real fake-backend processes,
with the official openai client."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    doc = config_doc({
        "chat-model": fake_model("Chat", aliases=["gpt-x", "chat"], memory={"gpu a": 4000},
                                 args=["--tokens-per-second", "200"]),
        "slow-chat": fake_model("Chat", memory={"gpu a": 1000}, args=["--tokens-per-second", "10"]),
        "base-model": fake_model("Base", memory={"gpu a": 2000}),
        "embed-model": fake_model("Embedding", aliases=["embed"], memory={"gpu a": 1000}),
        "rerank-model": fake_model("Reranker", memory={"gpu a": 500}),
    }, gpus={"gpu a": 24000})
    m = ManagerProcess(tmp, doc)
    yield m
    m.stop()


@pytest.fixture
def client(mgr):
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0)


def test_models_list_has_names_and_aliases(client):
    ids = {m.id for m in client.models.list()}
    assert {"chat-model", "gpt-x", "chat", "base-model", "embed-model", "embed", "rerank-model"} <= ids


def test_chat_through_alias(client, mgr):
    r = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hello there"}],
                                       max_tokens=5)
    assert r.choices[0].message.role == "assistant"
    assert len(r.choices[0].message.content.split()) == 5
    assert r.usage.completion_tokens == 5 and r.usage.prompt_tokens > 0
    assert mgr.models()["chat-model"]["state"] == "ready"


def test_streaming_chat_hides_usage_unless_asked(client):
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 4
    assert all(c.usage is None for c in chunks)  # manager asked upstream for usage but hid it
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_stream_is_relayed_as_it_arrives(mgr):
    """10 tokens at 10 tokens/s: the first chunk must reach the client long before the last."""
    body = {"model": "slow-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10, "stream": True}
    mgr.http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 1})  # warm it up
    t0 = time.monotonic()
    arrivals = []
    with httpx.stream("POST", mgr.url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - t0)
    assert len(arrivals) >= 11
    assert arrivals[1] < arrivals[-1] / 2, arrivals


def test_completions_and_base_model(client):
    r = client.completions.create(model="base-model", prompt="Once upon a time", max_tokens=3)
    assert r.object == "text_completion" and len(r.choices[0].text.split()) == 3
    r = client.completions.create(model="chat-model", prompt="Chat models serve completions too", max_tokens=2)
    assert r.usage.completion_tokens == 2
    stream = client.completions.create(model="base-model", prompt="x", max_tokens=3, stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices).split().__len__() == 3


def test_embeddings(client):
    r = client.embeddings.create(model="embed", input=["alpha", "beta"])
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == 64 and r.usage.prompt_tokens > 0


def test_rerank_with_httpx(mgr):
    r = mgr.http.post("/v1/rerank", json={"model": "rerank-model", "query": "red apple",
                                          "documents": ["blue sky", "a red apple", "green tree"], "top_n": 2})
    assert r.status_code == 200
    results = r.json()["results"]
    assert len(results) == 2 and results[0]["index"] == 1


def test_wrong_endpoint_for_mode_is_400(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="chat-model", input="x")
    assert "Chat model; use /v1/chat/completions" in str(err.value)
    with pytest.raises(openai.BadRequestError, match="Embedding model"):
        client.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])


def test_unknown_model_is_404_listing_known(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    body = err.value.body
    assert body["code"] == "model_not_found" and "chat-model" in body["message"]


def test_management_api(mgr):
    info = mgr.http.get("/api/info").json()
    assert info["models"] == 5 and info["name"] == "llm-manager"
    devices = mgr.http.get("/api/devices").json()["devices"]
    gpu = next(d for d in devices if d["name"] == "gpu a")
    assert gpu["total_memory_mb"] == 24000 and gpu["online"] is True
    r = mgr.http.post("/api/models/rerank-model/start", params={"wait": 1})
    assert r.status_code == 200 and r.json()["state"] == "ready"
    gpu = next(d for d in mgr.http.get("/api/devices", params={"fresh": 1}).json()["devices"] if d["name"] == "gpu a")
    assert {"model": "rerank-model", "instance": "rerank-model", "memory_mb": 500, "state": "ready"} in gpu["models"]
    m = mgr.models()["rerank-model"]
    assert m["pid"] and m["profile"] == "gpu" and m["uptime_s"] >= 0
    logs = mgr.http.get("/api/logs/rerank-model").json()["lines"]
    assert any("fake-backend listening" in x["line"] for x in logs)
    r = mgr.http.post("/api/models/rerank-model/stop")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert mgr.models()["rerank-model"]["pid"] is None
    r = mgr.http.post("/api/models/rerank-model/start")
    assert r.status_code == 202 and r.json()["state"] == "starting"
    mgr.wait_state("rerank-model", "ready")
    plan = mgr.http.get("/api/plan/base-model").json()
    assert plan["fits"] is True and plan["profile"] == "gpu"
    assert mgr.http.post("/api/models/nope/start").status_code == 404


def test_websocket_snapshot_and_state_events(mgr):
    import asyncio

    import tornado.websocket

    async def run():
        ws = await tornado.websocket.websocket_connect(mgr.url.replace("http", "ws") + "/api/ws")
        snap = json.loads(await ws.read_message())
        assert snap["type"] == "snapshot" and {m["name"] for m in snap["models"]} >= {"chat-model"}
        ws.write_message(json.dumps({"subscribe_logs": "embed-model"}))
        await asyncio.to_thread(mgr.http.post, "/api/models/embed-model/stop")
        await asyncio.to_thread(mgr.http.post, "/api/models/embed-model/start", params={"wait": 1})
        seen = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not {"model:ready", "log"} <= seen:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 5))
            if msg["type"] == "model" and msg["model"]["name"] == "embed-model":
                seen.add(f"model:{msg['model']['state']}")
            if msg["type"] == "log" and msg["model"] == "embed-model":
                seen.add("log")
        ws.close()
        return seen

    seen = asyncio.run(run())
    assert {"model:starting", "model:ready", "log"} <= seen


def test_client_disconnect_cancels_upstream(mgr):
    """Leave a 40-token stream at 10 tokens/s after two events: the backend must stop generating early."""
    body = {"model": "slow-chat", "messages": [{"role": "user", "content": "long"}], "max_tokens": 40,
            "stream": True}

    def request_lines() -> list[str]:  # the backend logs one line per request, when it ends
        lines = [x["line"] for x in mgr.http.get("/api/logs/slow-chat", params={"lines": 5000}).json()["lines"]]
        return [x for x in lines if "POST /v1/chat/completions" in x]

    before = len(request_lines())
    with httpx.stream("POST", mgr.url + "/v1/chat/completions", json=body, timeout=30) as r:
        events = 0
        for line in r.iter_lines():
            events += line.startswith("data:")
            if events >= 3:
                break
    # the backend's line for this request: at once when it stopped early, after 4 s when it was not told to
    assert wait_until(lambda: len(request_lines()) > before, timeout=10), "the backend never ended the request"
    last = request_lines()[-1]
    sent = int(last.split(" tokens")[0].split()[-1])
    assert sent < 20, last  # stopped well before 40 (would take 4 s)


def test_device_history_and_plan_cli(mgr):
    import subprocess
    import sys

    def history() -> list[dict]:
        return mgr.http.get("/api/devices/history", params={"seconds": 60}).json()["samples"]

    wait_until(lambda: len(history()) >= 2, timeout=10)  # two samples come 0.5 s apart (monitor_interval)
    samples = history()
    assert len(samples) >= 2 and samples[-1]["ts"] >= samples[0]["ts"]
    assert {"name", "used_memory_mb", "usage_percentage"} <= set(samples[-1]["devices"][0])
    r = subprocess.run([sys.executable, "-m", "llm_manager.cli", "plan", "base-model", "--url", mgr.url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "plan for base-model (running manager" in r.stdout and "profile: gpu" in r.stdout
    assert "gpu a" in r.stdout and "needs   2000 MB" in r.stdout
