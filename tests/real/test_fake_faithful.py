"""The fake backend answers in llama-server's shapes: same requests to both, directly, keys compared.

Values differ by design (the fake's words are not SmolLM2's); what clients and the manager rely on
must not: the keys of every answer and stream chunk, where usage and timings appear, SSE framing,
statuses and error bodies, /health while loading and after.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port
from real_helpers import DirectServer

from llm_manager.demo.real import EMBEDDING_DIM, RealLlama

pytestmark = pytest.mark.real

ALIAS = "smollm2"
CHAT = {"model": ALIAS, "messages": [{"role": "user", "content": "Write a short poem about the sea."}],
        "max_tokens": 4, "temperature": 0}
COMPLETION = {"model": ALIAS, "prompt": "Once upon a time", "max_tokens": 4, "temperature": 0}


class Pair:
    def __init__(self, real: DirectServer, fake: DirectServer):
        self.real, self.fake = real, fake
        # No keep-alive: llama-server sometimes closes a connection just after a streamed answer, and a
        # request racing that close fails with "Server disconnected" (a client-side race, not a shape).
        self.http = httpx.Client(timeout=60, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))

    def both(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, httpx.Response]:
        return (self.http.request(method, self.real.url + path, **kwargs),
                self.http.request(method, self.fake.url + path, **kwargs))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, llama: RealLlama) -> Iterator[Pair]:
    """llama-server (chat + embeddings in one process, -t 1) and the fake with a loading phase."""
    tmp: Path = tmp_path_factory.mktemp("faithful")
    port = free_port()
    real = DirectServer(llama.argv(port, alias=ALIAS, embeddings=True, threads=1), port, tmp / "llama.log")
    fport = free_port()
    fake = DirectServer([sys.executable, "-m", "llm_manager.testing.fake_backend", "--port", str(fport),
                         "--model", ALIAS, "--load-delay", "1.5", "--embedding-dim", str(EMBEDDING_DIM), "--quiet"],
                        fport, tmp / "fake.log")
    try:
        # Both polled at once: waiting for one first would let the other finish loading unseen.
        with ThreadPoolExecutor(2) as pool:
            for waited in [pool.submit(real.wait_healthy), pool.submit(fake.wait_healthy)]:
                waited.result()
        p = Pair(real, fake)
        yield p
        p.http.close()
    finally:
        real.stop()
        fake.stop()


def shape(value: Any) -> Any:
    """Keys all the way down; lists by their first element; every scalar alike (values are not compared)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "."


def sse(resp: httpx.Response) -> list[Any]:
    """Check the SSE framing and return the events' JSON, "[DONE]" last."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    text = resp.text
    assert text.endswith("\n\n"), text[-200:]
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    assert events[-1] == "data: [DONE]"
    return [json.loads(e[len("data: "):]) for e in events[:-1]] + ["[DONE]"]


def kind(chunk: Any) -> str:
    """What a stream chunk is for: role, content, finish, usage (an empty-choices chunk) or done."""
    if chunk == "[DONE]":
        return "done"
    if chunk["choices"] == []:
        return "usage"
    choice = chunk["choices"][0]
    if choice.get("finish_reason"):
        return "finish"
    return "role" if "role" in choice.get("delta", {}) else "content"


def layout(chunks: list[Any]) -> tuple[list[str], dict[str, Any]]:
    """The sequence of chunk kinds (runs collapsed) and the one shape each kind has."""
    kinds: list[str] = []
    shapes: dict[str, Any] = {}
    for chunk in chunks:
        k = kind(chunk)
        if not kinds or kinds[-1] != k:
            kinds.append(k)
        s = shape(chunk)
        assert shapes.setdefault(k, s) == s, f"two shapes for {k} chunks"
    return kinds, shapes


def test_health_while_loading_and_after(pair: Pair) -> None:
    # The fake was started with a 1.5 s load and polled from launch: it must have said 503 first.
    assert pair.fake.loading, "the fake backend never answered 503 while loading"
    status, body = pair.fake.loading[0]
    assert status == 503 and body == {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    # llama-server loads this model in ~0.3 s; when the poll caught its loading phase, it must look the same.
    for real_status, real_body in pair.real.loading:
        assert (real_status, real_body) == (status, body)
    real, fake = pair.both("GET", "/health")
    assert (real.status_code, real.json()) == (fake.status_code, fake.json()) == (200, {"status": "ok"})
    real, fake = pair.both("GET", "/v1/health")
    assert real.status_code == fake.status_code == 200


def test_models_shape(pair: Pair) -> None:
    real, fake = pair.both("GET", "/v1/models")
    assert real.status_code == fake.status_code == 200
    assert shape(fake.json()) == shape(real.json())
    assert real.json()["data"][0]["id"] == fake.json()["data"][0]["id"] == ALIAS
    assert real.json()["data"][0]["meta"]["n_embd"] == fake.json()["data"][0]["meta"]["n_embd"] == EMBEDDING_DIM


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", CHAT),
    ("/v1/completions", COMPLETION),
    ("/v1/embeddings", {"model": ALIAS, "input": ["The sea is wide.", "A cat sleeps."]}),
    ("/v1/embeddings", {"model": ALIAS, "input": "one text"}),
], ids=["chat", "completions", "embeddings", "embedding-one"])
def test_answer_keys(pair: Pair, path: str, body: dict[str, Any]) -> None:
    real, fake = pair.both("POST", path, json=body)
    assert real.status_code == fake.status_code == 200, (real.text, fake.text)
    assert real.headers["content-type"] == fake.headers["content-type"]
    assert shape(fake.json()) == shape(real.json())
    r, f = real.json(), fake.json()
    assert (r["object"], r["model"]) == (f["object"], f["model"])
    if "choices" in r:
        assert r["choices"][0]["finish_reason"] == f["choices"][0]["finish_reason"] == "length"
        assert r["usage"]["completion_tokens"] == f["usage"]["completion_tokens"] == 4
    else:
        assert len(r["data"]) == len(f["data"]) and len(f["data"][0]["embedding"]) == EMBEDDING_DIM


@pytest.mark.parametrize("include_usage", [False, True], ids=["plain", "include_usage"])
@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)],
                         ids=["chat", "completions"])
def test_stream_framing_and_chunk_keys(pair: Pair, path: str, body: dict[str, Any], include_usage: bool) -> None:
    """Same kinds of chunks in the same order with the same keys, usage where llama.cpp puts it."""
    body = {**body, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    real, fake = pair.both("POST", path, json=body)
    real_kinds, real_shapes = layout(sse(real))
    fake_kinds, fake_shapes = layout(sse(fake))
    assert fake_kinds == real_kinds
    assert fake_shapes == real_shapes
    expected = {("chat", False): ["role", "content", "finish", "done"],
                ("chat", True): ["role", "content", "finish", "usage", "done"],
                ("completions", False): ["content", "finish", "done"],
                ("completions", True): ["content", "finish", "done"]}  # usage rides on the finish chunk
    assert real_kinds == expected[("chat" if "chat" in path else "completions", include_usage)]
    assert real.headers["content-type"] == fake.headers["content-type"]


@pytest.mark.parametrize(("method", "path", "content"), [
    ("POST", "/v1/chat/completions", b"{not json"),
    ("POST", "/v1/chat/completions", b'{"model": "x"}'),
    ("POST", "/v1/chat/completions", b'{"messages": "hi"}'),
    ("POST", "/v1/chat/completions", b"[1, 2]"),
    ("POST", "/v1/chat/completions", b'{"messages": [{"content": "x"}]}'),
    ("POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "a"}'),
    ("POST", "/v1/completions", b'{"max_tokens": 3}'),
    ("POST", "/v1/completions", b"{not json"),
    ("POST", "/v1/embeddings", b'{"model": "x"}'),
    ("POST", "/v1/embeddings", b'{"input": []}'),
    ("POST", "/v1/embeddings", b'{"input": ""}'),
    ("POST", "/v1/embeddings", b'{"input": 5}'),
    ("GET", "/nope", b""),
    ("GET", "/v1/chat/completions", b""),
    ("DELETE", "/health", b""),
], ids=["chat-bad-json", "chat-no-messages", "chat-messages-not-array", "chat-array-body", "chat-no-role",
        "chat-bad-max-tokens", "completions-no-prompt", "completions-bad-json", "embeddings-no-input",
        "embeddings-empty-list", "embeddings-empty-text", "embeddings-bad-input", "unknown-path", "get-on-post",
        "delete-health"])
def test_error_bodies(pair: Pair, method: str, path: str, content: bytes) -> None:
    """Same status, same ``{"error": {code, message, type}}`` body, same type (messages may differ)."""
    real, fake = pair.both(method, path, content=content, headers={"Content-Type": "application/json"})
    assert real.status_code == fake.status_code, (real.text, fake.text)
    assert shape(fake.json()) == shape(real.json()) == {"error": {"code": ".", "message": ".", "type": "."}}
    assert real.json()["error"]["type"] == fake.json()["error"]["type"]
    assert real.json()["error"]["code"] == fake.json()["error"]["code"] == real.status_code
