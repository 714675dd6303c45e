"""A client's mistake gets the right 4xx with an OpenAI-style body, and the server keeps serving."""

from __future__ import annotations

import socket

import pytest
from helpers import ManagerProcess, config_doc, fake_model


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    m = ManagerProcess(tmp_path_factory.mktemp("bad"), config_doc({"chat": fake_model("Chat")}, max_body_mb=0.01,
                                                                        cors_origins=["http://app.example"]))
    yield m
    m.stop()


def post(mgr, path="/v1/chat/completions", **kw):
    return mgr.http.post(path, **kw)


@pytest.mark.parametrize("kwargs, status, needle", [
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "must be a JSON object"),
    ({"json": {"messages": [{"role": "user", "content": "x"}]}}, 400, "missing required field: model"),
    ({"json": {"model": 7, "messages": []}}, 400, "model must be a non-empty string"),
    ({"json": {"model": "chat"}}, 400, "messages: expected a non-empty list"),
    ({"json": {"model": "chat", "messages": ["hi"]}}, 400, "messages[0]"),
    ({"json": {"model": "ghost", "messages": [{"role": "user", "content": "x"}]}}, 404, "not found"),
    ({"content": b"model=chat", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415,
     "Content-Type must be application/json"),
    ({"json": {"model": "chat", "messages": [{"role": "user", "content": "x" * 20000}]}}, 413, "over the limit"),
])
def test_bad_requests(mgr, kwargs, status, needle):
    r = post(mgr, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"] and err["type"]
    assert "Traceback" not in r.text


def test_wrong_endpoint_and_unknown_paths(mgr):
    r = post(mgr, "/v1/embeddings", json={"model": "chat", "input": "x"})
    assert r.status_code == 400 and "use /v1/chat/completions" in r.json()["error"]["message"]
    r = post(mgr, "/v1/nonsense", json={"model": "chat"})
    assert r.status_code == 404 and "/v1/nonsense" in r.json()["error"]["message"]
    r = mgr.http.get("/api/nothing-here")
    assert r.status_code == 404 and "error" in r.json()
    r = mgr.http.get("/v1/chat/completions")
    assert r.status_code == 405 and "error" in r.json()


def test_chunked_body_over_limit(mgr):
    def gen():
        yield b'{"model": "chat", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}]}'

    r = post(mgr, content=gen(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_garbage_on_the_socket_does_not_kill_the_server(mgr):
    with socket.create_connection(("127.0.0.1", mgr.port)) as s:
        s.sendall(b"\x00\x01 NOT HTTP AT ALL\r\n\r\n")
        s.recv(100)
    r = post(mgr, json={"model": "chat", "messages": [{"role": "user", "content": "still alive?"}]})
    assert r.status_code == 200
    assert mgr.proc.poll() is None


def test_cors_only_for_configured_origins(mgr):
    pre = mgr.http.options("/v1/chat/completions", headers={"Origin": "http://app.example",
                                                            "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == "http://app.example"
    r = post(mgr, json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
             headers={"Origin": "http://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
    r = post(mgr, json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
             headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_oversized_body_is_refused_from_its_head_without_reading_it(mgr):
    with socket.create_connection(("127.0.0.1", mgr.port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n")  # ... and never the 50 MB
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = s.recv(4096)
            if not piece:
                break
            answer += piece
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"over the limit" in answer


def test_proxied_requests_are_in_the_access_log(mgr):
    post(mgr, json={"model": "chat", "messages": [{"role": "user", "content": "logged?"}]})
    post(mgr, content=b"{not json", headers={"content-type": "application/json"})
    log = mgr.log_path.read_text()
    assert "INFO tornado.access: 200 POST /v1/chat/completions (127.0.0.1)" in log
    assert "WARNING tornado.access: 400 POST /v1/chat/completions (127.0.0.1)" in log
