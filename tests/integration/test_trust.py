"""A hostile web page must not drive a local manager: black-box HTTP and websocket tests as an attacker would send them.

Each attack is sent the way a browser would send it (a foreign ``Origin``, a rebinding ``Host``, a form or
``text/plain`` body), and each test checks the refusal *and* that nothing changed. The legitimate callers
(same-origin pages, curl and SDKs without ``Origin``, allowed hosts) still work.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

EVIL = "http://evil.example"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    doc = config_doc({"chat": fake_model("Chat")}, cors_origins=["http://app.example"],
                     allowed_hosts=["llm.lan", ".corp.example"], header_timeout=1.0)
    m = ManagerProcess(tmp_path_factory.mktemp("trust"), doc, dashboard=True)
    yield m
    m.stop()


def refused(r: httpx.Response, status: int = 403, code: str = "origin_not_allowed") -> bool:
    return r.status_code == status and r.json()["error"]["code"] == code


# ---------------------------------------------------------------- DNS rebinding


@pytest.mark.parametrize("path", ["/api/config", "/api/keys", "/api/logs/chat", "/api/usage/summary", "/v1/models",
                                  "/api/models-info", "/dashboard", "/", "/api/health", "/v1/batches", "/v1/files",
                                  "/v1/responses/resp_x", "/api/tags", "/api/ps", "/api/version", "/batches",
                                  "/api/usage/costs", "/api/plan/chat?more=1", "/api/cluster", "/api/alerts",
                                  "/api/report"])
def test_rebinding_host_reads_nothing(mgr, path):
    r = mgr.http.get(path, headers={"Host": f"evil.example:{mgr.port}"})
    assert refused(r, 403, "host_not_allowed"), (r.status_code, r.text[:200])
    assert "program.allowed_hosts" in r.json()["error"]["message"]


def test_rebinding_host_starts_nothing(mgr):
    r = mgr.http.post("/api/models/chat/start", headers={"Host": f"evil.example:{mgr.port}"})
    assert refused(r, 403, "host_not_allowed")
    r = mgr.http.post("/v1/chat/completions", json=CHAT, headers={"Host": "attacker.test"})
    assert refused(r, 403, "host_not_allowed")
    assert mgr.models()["chat"]["state"] == "stopped"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "llm.lan", "gpu1.corp.example", "LOCALHOST.",
                                  "app.localhost"])
def test_allowed_hosts_still_work(mgr, host):
    r = mgr.http.get("/api/models-info", headers={"Host": f"{host}:{mgr.port}"})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- cross-origin writes


@pytest.mark.parametrize("kwargs", [
    {"content": b'{"x": 1}', "headers": {"Content-Type": "text/plain"}},
    {"content": b"a=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"json": {}},
    {},
])
def test_foreign_origin_cannot_start_a_model(mgr, kwargs):
    headers = {**kwargs.pop("headers", {}), "Origin": EVIL}
    r = mgr.http.post("/api/models/chat/start", headers=headers, **kwargs)
    assert refused(r), r.text
    assert mgr.models()["chat"]["state"] == "stopped"


def test_foreign_origin_cannot_touch_keys_config_or_pricing(mgr):
    before_config = mgr.config_path.read_text()
    keys_before = mgr.http.get("/api/keys").json()["keys"]
    bad = {"Origin": EVIL}
    assert refused(mgr.http.post("/api/keys", json={"name": "pwned"}, headers=bad))
    assert refused(mgr.http.post("/api/keys", content=b'{"name": "pwned"}',
                                 headers={**bad, "Content-Type": "text/plain"}))
    doc = json.loads(before_config)
    doc["chat"]["command"] = ["sh", "-c", "touch /tmp/pwned"]
    assert refused(mgr.http.put("/api/config", json=doc, headers=bad))
    assert refused(mgr.http.put("/api/pricing/chat", json={"input": 99, "output": 99}, headers=bad))
    assert refused(mgr.http.post("/api/usage/reprice", json={"pricing": {}}, headers=bad))
    assert mgr.config_path.read_text() == before_config
    assert mgr.http.get("/api/keys").json()["keys"] == keys_before
    assert mgr.http.get("/v1/chat/completions").status_code != 401  # still open: no key was created
    assert mgr.http.get("/api/pricing").json() == mgr.http.get("/api/pricing").json()


def test_foreign_origin_cannot_revoke_a_key(tmp_path):
    m = ManagerProcess(tmp_path, config_doc({"chat": fake_model("Chat")}))
    try:
        created = m.http.post("/api/keys", json={"name": "mine"}).json()
        r = m.http.delete(f"/api/keys/{created['id']}", headers={"Origin": EVIL})
        assert refused(r)
        r = m.http.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {created['key']}"})
        assert r.status_code == 200, r.text  # the key still works
    finally:
        m.stop()


def test_foreign_origin_on_v1_is_refused_unless_listed(mgr):
    assert refused(mgr.http.post("/v1/chat/completions", json=CHAT, headers={"Origin": EVIL}))
    assert mgr.models()["chat"]["state"] == "stopped"
    r = mgr.http.post("/v1/chat/completions", json=CHAT, headers={"Origin": "http://app.example"})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
    mgr.http.post("/api/models/chat/stop")


def test_same_origin_page_and_plain_clients_still_work(mgr):
    own = {"Origin": f"http://127.0.0.1:{mgr.port}"}
    r = mgr.http.post("/api/models/chat/start", headers=own, params={"wait": 1})
    assert r.status_code == 200, r.text
    r = mgr.http.post("/api/models/chat/stop", headers={"Origin": f"http://localhost:{mgr.port}",
                                                        "Host": f"localhost:{mgr.port}"})
    assert r.status_code == 200, r.text
    assert mgr.http.get("/api/models-info", headers={"Origin": EVIL}).status_code == 200  # a read needs no origin


# ---------------------------------------------------------------- content type


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"])
def test_management_writes_take_json_only(mgr, ctype):
    keys_before = mgr.http.get("/api/keys").json()["keys"]
    r = mgr.http.post("/api/keys", content=b'{"name": "smuggled"}', headers={"Content-Type": ctype})
    assert refused(r, 415, "unsupported_media_type")
    r = mgr.http.put("/api/config", content=mgr.config_path.read_bytes(), headers={"Content-Type": ctype})
    assert refused(r, 415, "unsupported_media_type")
    assert mgr.http.get("/api/keys").json()["keys"] == keys_before


def test_bodyless_action_needs_no_content_type(mgr):
    r = mgr.http.post("/api/models/chat/stop")
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- websockets


def test_foreign_origin_websockets_are_refused(mgr):
    base = f"ws://127.0.0.1:{mgr.port}"

    async def attempt(path: str, origin: str) -> int:
        try:
            conn = await websocket_connect(HTTPRequest(base + path, headers={"Origin": origin}))
        except HTTPClientError as exc:
            return exc.code
        conn.close()
        return 101

    assert asyncio.run(attempt("/api/ws", EVIL)) == 403
    assert asyncio.run(attempt("/dashboard/ws", EVIL)) == 403
    assert asyncio.run(attempt("/api/ws", f"http://127.0.0.1:{mgr.port}")) == 101


# ---------------------------------------------------------------- connections


def test_slow_headers_are_cut_off(mgr):
    with socket.create_connection(("127.0.0.1", mgr.port), timeout=20) as s:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        assert s.recv(100) == b""  # the server closed the connection (header_timeout: 1 s)


def test_early_error_closes_keep_alive_cleanly(mgr):
    """A 415 answered from the head says ``Connection: close``; the next request on the client never hits a reset."""
    with httpx.Client(base_url=mgr.url, timeout=10, trust_env=False) as c:
        for _ in range(40):
            r = c.post("/v1/chat/completions", content=b"model=chat" * 50,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 415 and r.headers.get("Connection") == "close"
            assert c.get("/api/health").status_code == 200


# ---------------------------------------------------------------- the protocol, batch and file endpoints

PROTOCOL_WRITES = [
    ("POST", "/v1/messages", {"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    ("POST", "/v1/responses", {"model": "chat", "input": "hi"}),
    ("POST", "/api/chat", {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": False}),
    ("POST", "/api/generate", {"model": "chat", "prompt": "hi", "stream": False}),
    ("POST", "/api/show", {"model": "chat"}),
    ("POST", "/v1/batches", {"input_file_id": "file-x", "endpoint": "/v1/chat/completions"}),
    ("POST", "/v1/batches/batch_x/cancel", {}),
    ("DELETE", "/v1/files/file-x", None),
    ("DELETE", "/v1/responses/resp_x", None),
]


@pytest.mark.parametrize("method, path, body", PROTOCOL_WRITES)
def test_new_endpoints_refuse_foreign_origins_and_rebinding_hosts(mgr, method, path, body):
    r = mgr.http.request(method, path, json=body, headers={"Origin": EVIL})
    assert refused(r), (path, r.status_code, r.text[:200])
    r = mgr.http.request(method, path, json=body, headers={"Host": f"evil.example:{mgr.port}"})
    assert refused(r, 403, "host_not_allowed"), (path, r.status_code, r.text[:200])
    assert mgr.models()["chat"]["state"] == "stopped"


def test_a_foreign_page_cannot_upload_a_batch_file(mgr):
    files_before = mgr.http.get("/v1/files").json()["data"]
    form = {"files": {"file": ("x.jsonl", b'{"custom_id": "a"}\n')}, "data": {"purpose": "batch"}}
    assert refused(mgr.http.post("/v1/files", headers={"Origin": EVIL}, **form))
    r = mgr.http.post("/v1/files", headers={"Host": "attacker.test"}, **form)
    assert refused(r, 403, "host_not_allowed")
    assert mgr.http.get("/v1/files").json()["data"] == files_before
    assert mgr.http.post("/v1/files", **form).status_code == 200  # the same upload without Origin works
