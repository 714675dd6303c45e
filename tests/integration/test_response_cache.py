"""The response cache through a real manager process, real fake-backend processes and the openai client.

Whether the upstream was asked is read from the fake backend's own request log (one line per request it served).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from helpers import ManagerProcess, MemoryReply, config_doc, fake_model, wait_until
from prometheus_client.parser import text_string_to_metric_families

HEADER = "x-llm-manager-cache"
PRICE = {"input": 1.0, "output": 2.0, "per": 1000}


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    doc = config_doc({
        "embed": fake_model("Embedding", pricing=PRICE),
        "chat": fake_model("Chat", cache=True, pricing=PRICE),
        "plain-chat": fake_model("Chat"),
    })
    m = ManagerProcess(tmp_path_factory.mktemp("cache"), doc)
    yield m
    m.stop()


@pytest.fixture
def client(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0)


def served(mgr: ManagerProcess, model: str, path: str) -> int:
    """How many requests to ``path`` the model's backend logged."""
    lines = mgr.http.get(f"/api/logs/{model}", params={"lines": 5000}).json()["lines"]
    return sum(1 for x in lines if x["stream"] != "manager" and f"POST {path} " in x["line"])


def wait_served(mgr: ManagerProcess, model: str, path: str, count: int) -> int:
    """The backend logs a request once it ended: wait for ``count`` lines (the log may trail the answer)."""
    wait_until(lambda: served(mgr, model, path) >= count, timeout=10)
    return served(mgr, model, path)


def embed(client: openai.OpenAI, text: str, **extra: Any) -> tuple[str | None, Any]:
    raw = client.embeddings.with_raw_response.create(model="embed", input=text, **extra)
    return raw.headers.get(HEADER), raw.parse()


def recent(mgr: ManagerProcess) -> dict[str, Any]:
    return mgr.http.get("/api/usage/recent", params={"limit": 1}).json()["requests"][-1]


def test_embeddings_repeat_is_a_hit_without_the_upstream(mgr, client):
    before = served(mgr, "embed", "/v1/embeddings")
    first_header, first = embed(client, "the quick brown fox")
    assert first_header == "miss"
    assert wait_served(mgr, "embed", "/v1/embeddings", before + 1) == before + 1
    row = recent(mgr)
    assert row["cached"] is False and row["cost"] > 0
    header, again = embed(client, "the quick brown fox", user="someone else")  # ``user`` is not in the key
    assert header == "hit"
    assert again.data[0].embedding == first.data[0].embedding
    assert served(mgr, "embed", "/v1/embeddings") == before + 1
    hit = recent(mgr)
    assert hit["cached"] is True and hit["cost"] == 0 and hit["status"] == 200
    assert hit["prompt_tokens"] == first.usage.prompt_tokens > 0
    assert hit["queue_ms"] == 0 and hit["start_ms"] == 0


def test_a_hit_does_not_start_a_stopped_model(mgr, client):
    assert embed(client, "kept while stopped")[0] == "miss"
    launches = mgr.launches("embed")
    assert mgr.http.post("/api/models/embed/stop").json()["state"] == "stopped"
    assert embed(client, "kept while stopped")[0] == "hit"
    assert mgr.models()["embed"]["state"] == "stopped" and mgr.launches("embed") == launches
    assert embed(client, "not cached yet")[0] == "miss"  # a miss does start it
    assert mgr.models()["embed"]["state"] == "ready" and mgr.launches("embed") == launches + 1


def test_chat_at_temperature_zero_is_cached_and_sampled_chat_never(mgr, client):
    msgs = [{"role": "user", "content": "deterministic please"}]
    before = served(mgr, "chat", "/v1/chat/completions")
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=msgs, temperature=0, max_tokens=4)
    assert raw.headers.get(HEADER) == "miss"
    first = raw.parse()
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=msgs, temperature=0, max_tokens=4)
    assert raw.headers.get(HEADER) == "hit" and raw.parse().model_dump() == first.model_dump()
    assert wait_served(mgr, "chat", "/v1/chat/completions", before + 1) == before + 1
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="chat", messages=msgs, temperature=0.7,
                                                               max_tokens=4)
        assert raw.headers.get(HEADER) is None
    assert wait_served(mgr, "chat", "/v1/chat/completions", before + 3) == before + 3
    for _ in range(2):  # a Chat model without "cache": true is never cached, even at temperature 0
        raw = client.chat.completions.with_raw_response.create(model="plain-chat", messages=msgs, temperature=0,
                                                               max_tokens=2)
        assert raw.headers.get(HEADER) is None
    assert wait_served(mgr, "plain-chat", "/v1/chat/completions", 2) == 2


def test_a_streamed_answer_is_replayed_as_the_same_stream(mgr, client):
    body = {"model": "chat", "messages": [{"role": "user", "content": "stream me"}], "seed": 42, "max_tokens": 6,
            "stream": True}

    def stream() -> tuple[str | None, str, bytes]:
        with httpx.stream("POST", mgr.url + "/v1/chat/completions", json=body, timeout=30) as r:
            assert r.status_code == 200
            return r.headers.get(HEADER), r.headers["content-type"], r.read()

    before = served(mgr, "chat", "/v1/chat/completions")
    header, ctype, original = stream()
    assert header == "miss" and original.rstrip().endswith(b"data: [DONE]") and b'"usage"' not in original
    header, replay_ctype, replay = stream()
    assert header == "hit" and replay == original and replay_ctype == ctype and ctype.startswith("text/event-stream")
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**body) if c.choices)
    assert len(text.split()) == 6  # the SDK reads the replayed stream as a stream
    assert wait_served(mgr, "chat", "/v1/chat/completions", before + 1) == before + 1
    row = recent(mgr)
    assert row["cached"] is True and row["stream"] is True and row["completion_tokens"] == 6 and row["cost"] == 0
    whole = client.chat.completions.with_raw_response.create(**{**body, "stream": False})
    assert whole.headers.get(HEADER) == "miss"  # a whole answer is stored apart from the stream


def test_cache_control_no_cache_bypasses_and_refreshes(mgr, client):
    assert embed(client, "fresh, please")[0] == "miss"
    before = wait_served(mgr, "embed", "/v1/embeddings", 1)
    header, _ = embed(client, "fresh, please", extra_headers={"Cache-Control": "no-cache"})
    assert header == "bypass"
    assert wait_served(mgr, "embed", "/v1/embeddings", before + 1) == before + 1
    assert embed(client, "fresh, please")[0] == "hit"
    assert served(mgr, "embed", "/v1/embeddings") == before + 1


def test_metrics_count_hits_misses_and_tokens_saved(mgr, client):
    def counters() -> dict[str, float]:
        fams = text_string_to_metric_families(mgr.http.get("/api/metrics").text)
        return {s.name: s.value for f in fams for s in f.samples
                if s.name.startswith("llm_cache_") and s.name.endswith("_total") and s.labels["model"] == "embed"}

    start = counters()
    _, answer = embed(client, "count me")
    embed(client, "count me")
    embed(client, "count me")
    now = counters()
    assert now["llm_cache_misses_total"] - start.get("llm_cache_misses_total", 0) == 1
    assert now["llm_cache_hits_total"] - start.get("llm_cache_hits_total", 0) == 2
    saved = now["llm_cache_tokens_saved_total"] - start.get("llm_cache_tokens_saved_total", 0)
    assert saved == 2 * answer.usage.total_tokens > 0


def reload(mgr: ManagerProcess, change: Any) -> None:
    doc = json.loads(mgr.config_path.read_text())
    change(doc)
    r = mgr.http.put("/api/config", json=doc)
    assert r.status_code == 200, r.text
    mgr.config_path.write_text(json.dumps(doc))


def test_a_changed_model_config_invalidates_its_answers(mgr, client):
    assert embed(client, "before the reload")[0] in ("miss", "hit")
    assert embed(client, "before the reload")[0] == "hit"
    reload(mgr, lambda doc: doc["plain-chat"].update(description="another model changed"))
    assert embed(client, "before the reload")[0] == "hit"  # an unchanged model keeps its answers
    reload(mgr, lambda doc: doc["embed"].update(description="changed"))
    assert embed(client, "before the reload")[0] == "miss"
    assert embed(client, "before the reload")[0] == "hit"
    reload(mgr, lambda doc: doc["embed"].update(cache=False))
    assert embed(client, "before the reload")[0] is None  # caching turned off for the model


def test_a_tiny_cache_evicts_the_oldest_answers(mgr, client):
    reload(mgr, lambda doc: (doc["embed"].pop("cache", None), doc["program"].update(cache_mb=0.01)))  # 10 KiB
    texts = [f"entry number {i}" for i in range(12)]  # ~1.6 KB each with the entry's overhead
    assert all(embed(client, t)[0] == "miss" for t in texts)
    assert embed(client, texts[-1])[0] == "hit"
    assert embed(client, texts[0])[0] == "miss"  # the oldest was evicted to stay under 10 KiB
    reload(mgr, lambda doc: doc["program"].update(cache_mb=0))
    assert embed(client, texts[-1])[0] is None  # 0 turns the cache off


# ---------------------------------------------------------------- in-process: the pipeline with a Reply in memory


@pytest.fixture
async def service(tmp_path):
    from llm_manager.config.parse import parse_config
    from llm_manager.service import build

    doc = config_doc({"embed": fake_model("Embedding")},
                     api_keys=[{"key": "sk-a", "name": "a"}, {"key": "sk-b", "name": "b"}])
    svc = build(parse_config(doc, tmp_path), tmp_path / "data", with_store=False)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown()


async def ask(service, body: dict, token: str) -> tuple[str | None, Any]:
    from llm_manager.accounting.security import Caller
    from llm_manager.gateway.pipeline import Call

    reply = MemoryReply()
    rec = await service.pipeline.handle(Call("v1/embeddings", json.dumps(body).encode(), Caller(token, "::1")), reply)
    return reply.headers.get("X-LLM-Manager-Cache"), rec


async def test_one_key_never_reads_what_another_key_cached(service):
    body = {"model": "embed", "input": "private question"}
    assert (await ask(service, body, "sk-a"))[0] == "miss"
    header, rec = await ask(service, body, "sk-a")
    assert header == "hit" and rec.cached and rec.key_id == "cfg:a"
    header, rec = await ask(service, body, "sk-b")  # the same request from another key: answered by the model
    assert header == "miss" and not rec.cached
    assert (await ask(service, body, "sk-b"))[0] == "hit"


async def test_an_error_answer_is_never_stored(service):
    body = {"model": "embed", "input": [""]}  # the backend refuses empty content with a 400
    for _ in range(2):
        header, rec = await ask(service, body, "sk-a")
        assert header == "miss" and rec.status == 400 and not rec.cached
    assert len(service.pipeline.cache) == 0
