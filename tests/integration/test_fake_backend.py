"""The fake llama-server, exercised as a real subprocess over HTTP (plus one in-process check)."""

from __future__ import annotations

import json
import math
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from helpers import free_port, wait_until

from llm_manager.testing import fake_responses as fr
from llm_manager.testing.fake_backend import BackendOptions, start_server

CHAT = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there friend"}]}


@dataclass
class Backend:
    proc: subprocess.Popen[str]
    port: int
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 3.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if predicate(line):
                return line


def _pump(stream, sink: queue.Queue[str]) -> None:
    """Drain stdout in a thread so the pipe never fills and lines can be awaited."""
    for line in stream:
        sink.put(line.rstrip("\n"))


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "llm_manager.testing.fake_backend", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Backend]]:
    """Start backends on free ports, wait for the listening line; kill them all afterwards."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, port: int | None = None) -> Backend:
        port = port or free_port()
        proc = _spawn("--port", str(port), *args)
        procs.append(proc)
        backend = Backend(proc, port)
        threading.Thread(target=_pump, args=(proc.stdout, backend.lines), daemon=True).start()
        line = backend.wait_line(lambda s: "listening" in s, timeout=10)
        assert line == f"fake-backend listening on http://127.0.0.1:{port} model={_model(args)}"
        return backend

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
        proc.stderr.close()  # type: ignore[union-attr]


def _model(args: tuple[str, ...]) -> str:
    return args[args.index("--model") + 1] if "--model" in args else "fake-model"


@pytest.fixture
def backend(spawn: Callable[..., Backend]) -> Backend:
    return spawn("--model", "tiny-test")


def sse_events(client: httpx.Client, url: str, body: dict) -> list[tuple[float, str]]:
    """(arrival time since request start, data) for each SSE event."""
    t0 = time.monotonic()
    events = []
    with client.stream("POST", url, json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-accel-buffering"] == "no"
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append((time.monotonic() - t0, line[len("data: "):]))
    return events


def test_health_models_and_unknown_path(backend: Backend) -> None:
    with httpx.Client(base_url=backend.url) as c:
        assert c.get("/health").json() == {"status": "ok"}
        for path in ("/v1/models", "/models"):
            data = c.get(path).json()
            assert data["object"] == "list"
            assert data["data"][0]["id"] == "tiny-test" and data["data"][0]["owned_by"] == "llamacpp"
            assert isinstance(data["data"][0]["created"], int)
            assert data["models"][0]["name"] == "tiny-test" and data["data"][0]["meta"]["n_embd"] == 64
        r = c.get("/nope")
        assert r.status_code == 404
        assert r.json() == {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
        r = c.delete("/health")  # llama-server has no 405: another method on a known path is a 404
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert backend.wait_line(lambda s: s.startswith("GET /nope 404"))


def test_load_delay_then_healthy(spawn: Callable[..., Backend]) -> None:
    b = spawn("--load-delay", "0.8")
    loading = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    with httpx.Client(base_url=b.url) as c:
        r = c.get("/health")
        assert (r.status_code, r.json()) == (503, loading)
        r = c.post("/v1/chat/completions", json=CHAT)
        assert (r.status_code, r.json()) == (503, loading)

        def loaded() -> httpx.Response | None:
            r = c.get("/health")
            return r if r.status_code != 503 else None

        r = wait_until(loaded, timeout=5, interval=0.05) or c.get("/health")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_chat_non_stream(backend: Backend) -> None:
    with httpx.Client(base_url=backend.url) as c:
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "whatever", "max_tokens": 5})
        assert r.status_code == 200
        data = r.json()
        assert data["object"] == "chat.completion" and data["model"] == "tiny-test"
        assert data["id"] and isinstance(data["created"], int)
        choice = data["choices"][0]
        assert choice["index"] == 0 and choice["finish_reason"] == "length"
        assert "logprobs" not in choice  # llama-server leaves it out of chat choices unless asked
        assert choice["message"]["role"] == "assistant"
        assert len(choice["message"]["content"].split()) == 5
        assert data["usage"] == {"prompt_tokens": 2 + 3 + 8, "completion_tokens": 5, "total_tokens": 18,
                                 "prompt_tokens_details": {"cached_tokens": 0}}
        assert data["system_fingerprint"] and data["timings"]["predicted_n"] == 5
        assert data["timings"]["prompt_n"] == 13
        # deterministic; no max_tokens -> default count and "stop"
        again = c.post("/chat/completions", json={**CHAT, "max_tokens": 5}).json()
        assert again["choices"][0]["message"] == choice["message"]
        default = c.post("/v1/chat/completions", json=CHAT).json()
        assert default["usage"]["completion_tokens"] == 16 and default["choices"][0]["finish_reason"] == "stop"
        other = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}).json()
        assert other["choices"][0]["message"]["content"] != default["choices"][0]["message"]["content"]
    assert backend.wait_line(lambda s: s.startswith("POST /v1/chat/completions 200 5 tokens"))


def test_chat_stream_is_incremental(spawn: Callable[..., Backend]) -> None:
    b = spawn("--tokens-per-second", "20")
    with httpx.Client(base_url=b.url, timeout=5) as c:
        events = sse_events(c, "/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 10})
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert len(chunks) == 1 + 10 + 1  # role, tokens, finish; no usage chunk unless asked
    assert all(ch["object"] == "chat.completion.chunk" and "usage" not in ch for ch in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}  # as llama-server
    assert all(len(ch["choices"][0]["delta"]["content"].split()) == 1 for ch in chunks[1:-1])
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert chunks[-1]["timings"]["predicted_n"] == 10 and "timings" not in chunks[-2]
    first, total = events[0][0], events[-1][0]
    assert total >= 0.4  # 10 tokens at 20/s
    assert first < total / 2
    text = "".join(ch["choices"][0]["delta"]["content"] for ch in chunks[1:-1])
    assert text == "".join(fr.generate_tokens(fr.parse_generation(CHAT, chat=True, default_tokens=16).prompt, 10))


def test_stream_include_usage_and_completions(backend: Backend) -> None:
    with httpx.Client(base_url=backend.url) as c:
        body = {**CHAT, "stream": True, "max_tokens": 3, "stream_options": {"include_usage": True}}
        events = [d for _, d in sse_events(c, "/v1/chat/completions", body)]
        assert events[-1] == "[DONE]"
        usage = json.loads(events[-2])
        assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3 and "timings" in usage
        assert sum("usage" in json.loads(e) for e in events[:-1]) == 1
        finish = json.loads(events[-3])
        assert finish["choices"][0]["finish_reason"] == "length" and "timings" not in finish

        r = c.post("/v1/completions", json={"prompt": "once upon a time", "max_tokens": 4})
        data = r.json()
        assert data["object"] == "text_completion" and data["model"] == "tiny-test"
        assert len(data["choices"][0]["text"].split()) == 4 and data["choices"][0]["finish_reason"] == "length"
        assert data["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8,
                                 "prompt_tokens_details": {"cached_tokens": 0}}
        assert data["choices"][0]["logprobs"] is None and data["id"].startswith("chatcmpl-")

        events = [d for _, d in sse_events(c, "/completions", {"prompt": "once upon a time", "max_tokens": 4,
                                                                "stream": True})]
        chunks = [json.loads(e) for e in events[:-1]]
        assert events[-1] == "[DONE]" and all(ch["object"] == "text_completion" for ch in chunks)
        assert "".join(ch["choices"][0]["text"] for ch in chunks) == data["choices"][0]["text"]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        # llama-server: no usage-only chunk for completions; the finish chunk carries usage, always
        assert chunks[-1]["usage"]["completion_tokens"] == 4 and "timings" in chunks[-1]
        assert all("usage" not in ch for ch in chunks[:-1])
        asked = [json.loads(d) for _, d in sse_events(c, "/v1/completions", {
            "prompt": "once upon a time", "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}})[:-1]]
        assert [sorted(ch) for ch in asked] == [sorted(ch) for ch in chunks] and asked[-1]["choices"]


def test_done_delay_ends_the_body_later(spawn: Callable[..., Backend]) -> None:
    b = spawn("--done-delay", "0.3")
    with httpx.Client(base_url=b.url, timeout=5) as c:
        t0 = time.monotonic()
        events = sse_events(c, "/v1/chat/completions", {**CHAT, "stream": True, "max_tokens": 2})
        total = time.monotonic() - t0
    assert events[-1][1] == "[DONE]" and events[-1][0] < 0.25
    assert total >= 0.3


def test_embeddings(backend: Backend) -> None:
    with httpx.Client(base_url=backend.url) as c:
        data = c.post("/v1/embeddings", json={"input": ["the cat sat", "the cat sat", "stock market"]}).json()
        assert data["object"] == "list" and data["model"] == "tiny-test"
        assert data["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
        vecs = [d["embedding"] for d in data["data"]]
        assert [d["index"] for d in data["data"]] == [0, 1, 2]
        assert all(len(v) == 64 and math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-9) for v in vecs)
        assert vecs[0] == vecs[1] != vecs[2]
        single = c.post("/embeddings", json={"input": "the cat sat"}).json()
        assert single["data"][0]["embedding"] == vecs[0]
        ids = c.post("/v1/embeddings", json={"input": [1, 2, 3]}).json()
        assert len(ids["data"]) == 1


def test_embedding_dim(spawn: Callable[..., Backend]) -> None:
    b = spawn("--embedding-dim", "8")
    assert len(httpx.post(f"{b.url}/v1/embeddings", json={"input": "x"}).json()["data"][0]["embedding"]) == 8


def test_rerank(backend: Backend) -> None:
    docs = ["weather today is sunny", "the quick brown fox", "a fox and a quick dog", "nothing here"]
    with httpx.Client(base_url=backend.url) as c:
        for path in ("/v1/rerank", "/rerank", "/v1/reranking"):
            data = c.post(path, json={"query": "quick fox", "documents": docs}).json()
            assert data["model"] == "tiny-test" and data["object"] == "list"
            assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 0
            order = [r["index"] for r in data["results"]]
            assert order[0] in (1, 2) and set(order[:2]) == {1, 2} and len(order) == 4
            scores = [r["relevance_score"] for r in data["results"]]
            assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
        top = c.post("/v1/rerank", json={"query": "quick fox", "documents": docs, "top_n": 1}).json()
        assert top["results"] == data["results"][:1]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", b"{not json"),
    ("/v1/chat/completions", b'{"model": "x"}'),
    ("/v1/chat/completions", b'{"messages": "hi"}'),
    ("/v1/completions", b'{"max_tokens": 3}'),
    ("/v1/completions", b'[1, 2]'),
    ("/v1/embeddings", b'{"model": "x"}'),
    ("/v1/embeddings", b'{"input": []}'),
    ("/v1/embeddings", b'{"input": ""}'),
    ("/v1/embeddings", b'{"input": 5}'),
    ("/v1/rerank", b'{"documents": ["a"]}'),
    ("/v1/rerank", b'{"query": "a"}'),
])
def test_bad_requests(backend: Backend, path: str, body: bytes) -> None:
    r = httpx.post(backend.url + path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 400 and err["type"] == "invalid_request_error" and err["message"]


def test_llama_server_quirks(backend: Backend) -> None:
    """A message without a role is llama-server's 500 server_error; an empty message list is accepted."""
    r = httpx.post(backend.url + "/v1/chat/completions", json={"messages": [{"content": "x"}]})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    r = httpx.post(backend.url + "/v1/chat/completions", json={"messages": [], "max_tokens": 2})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


def test_crash_after(spawn: Callable[..., Backend]) -> None:
    b = spawn("--crash-after", "2")
    with httpx.Client(base_url=b.url) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        with pytest.raises(httpx.TransportError):
            c.post("/v1/embeddings", json={"input": "x"})
    assert b.proc.wait(timeout=3) == 3


def test_fail_start() -> None:
    proc = _spawn("--port", str(free_port()), "--fail-start")
    try:
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert "error: failed to load model" in err and "listening" not in out


def test_hang_keeps_health_then_sigterm_exits(spawn: Callable[..., Backend]) -> None:
    b = spawn("--hang")
    with httpx.Client(base_url=b.url) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v1/chat/completions", json=CHAT, timeout=0.5)
        assert c.get("/health", timeout=2).json() == {"status": "ok"}
        # a request still hanging must not hold up shutdown: send one, wait until the backend has read all of it
        body = b'{"prompt": "x"}'
        with socket.create_connection(("127.0.0.1", b.port), timeout=5) as pending:
            pending.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert wait_until(lambda: request_read_by_server(pending), timeout=5), "the request was never read"
            t0 = time.monotonic()
            b.proc.send_signal(signal.SIGTERM)
            assert b.proc.wait(timeout=2) == 0
            assert time.monotonic() - t0 < 2
            assert pending.recv(1024) == b""  # the exited backend's end is closed, the request unanswered


def _tcp_queues() -> dict[tuple[int, int], tuple[int, int]]:
    """(local port, remote port) -> (send queue, receive queue) of every IPv4 TCP socket, from /proc/net/tcp."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            fields = row.split()
            local, remote, (tx, rx) = fields[1], fields[2], fields[4].split(":")
            out[(int(local.split(":")[1], 16), int(remote.split(":")[1], 16))] = (int(tx, 16), int(rx, 16))
    return out


def request_read_by_server(sock: socket.socket) -> bool:
    """Every byte ``sock`` sent has been delivered and read by the process at the other end (its kernel
    receive queue is empty): the request is in the server's hands, not in flight or in a buffer."""
    mine, theirs = sock.getsockname()[1], sock.getpeername()[1]
    queues = _tcp_queues()
    sent, peer = queues.get((mine, theirs)), queues.get((theirs, mine))
    return sent is not None and peer is not None and sent[0] == 0 and peer[1] == 0


def test_sigterm_exits_zero_quickly(backend: Backend) -> None:
    t0 = time.monotonic()
    backend.proc.send_signal(signal.SIGTERM)
    assert backend.proc.wait(timeout=2) == 0
    assert time.monotonic() - t0 < 2
    assert backend.wait_line(lambda s: s == "fake-backend stopped")


async def test_in_process_fast_mode_sends_same_bytes() -> None:
    server, port = await start_server(BackendOptions(port=0, fast=True, log_requests=False,
                                                     max_tokens_default=8))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            a = await c.post("/v1/chat/completions", json=CHAT)
            b = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "other"}]})
            assert a.status_code == b.status_code == 200 and a.content == b.content
            assert a.json()["usage"]["completion_tokens"] == 8
            comp = await c.post("/v1/completions", json={"prompt": "x"})
            assert comp.json()["object"] == "text_completion"
            streamed = await c.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 2})
            assert streamed.text.endswith("data: [DONE]\n\n")
            assert (await c.post("/v1/chat/completions", content=b"nope")).status_code == 400
    finally:
        server.stop()
        await server.close_all_connections()
