"""With an admin key: the dashboard has a working login, the event websocket takes the key without a URL,
no secret reaches the log, and a Prometheus scraper gets a read-only key."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from urllib.parse import quote

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

ADMIN = "sk-admin-~~~>>>secret"  # base64 of "~~~" and ">>>" has the characters base64url replaces
METRICS = "sk-metrics-read-only"


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    doc = config_doc({"chat": fake_model("Chat")}, admin_key=ADMIN, metrics_key=METRICS)
    m = ManagerProcess(tmp_path_factory.mktemp("admin"), doc, dashboard=True)
    yield m
    m.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def subprotocol(key: str) -> str:
    return "bearer." + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def test_metrics_key_reads_metrics_and_nothing_else(mgr):
    r = mgr.http.get("/api/metrics", headers=bearer(METRICS))
    assert r.status_code == 200 and "# TYPE" in r.text
    assert mgr.http.get("/api/metrics").status_code == 401
    assert mgr.http.get("/api/metrics", headers=bearer(ADMIN)).status_code == 200
    for method, path in [("GET", "/api/config"), ("GET", "/api/keys"), ("POST", "/api/models/chat/start"),
                         ("GET", "/api/models-info")]:
        r = mgr.http.request(method, path, headers=bearer(METRICS))
        assert r.status_code == 401, (method, path, r.text)
    states = [m["state"] for m in mgr.http.get("/api/models-info", headers=bearer(ADMIN)).json()["models"]]
    assert states == ["stopped"]  # the refused start did nothing


def _open(mgr, url: str, subprotocols: list[str] | None = None, origin: str | None = None):
    async def go():
        headers = {"Origin": origin} if origin else {}
        conn = await websocket_connect(HTTPRequest(url, headers=headers), subprotocols=subprotocols)
        first = json.loads(await conn.read_message())
        chosen = conn.selected_subprotocol
        conn.close()
        return first, chosen

    return asyncio.run(go())


def test_websocket_takes_the_key_as_a_subprotocol(mgr):
    url = f"ws://127.0.0.1:{mgr.port}/api/ws"
    first, chosen = _open(mgr, url, ["llm-manager", subprotocol(ADMIN)], origin=f"http://127.0.0.1:{mgr.port}")
    assert first["type"] == "snapshot" and chosen == "llm-manager"
    for protocols in (["llm-manager"], ["llm-manager", subprotocol("wrong")], ["llm-manager", "bearer.%%%"]):
        with pytest.raises(HTTPClientError) as err:
            _open(mgr, url, protocols)
        assert err.value.code == 401


def test_no_secret_in_the_log(mgr):
    first, _ = _open(mgr, f"ws://127.0.0.1:{mgr.port}/api/ws?token={quote(ADMIN)}")  # the old way still works
    assert first["type"] == "snapshot"
    mgr.http.get("/api/models-info", params={"api_key": ADMIN, "x": "1"})
    mgr.http.post("/v1/chat/completions?key=sk-in-url", json={"model": "chat"})
    log = mgr.log_path.read_text()
    assert "/api/ws?token=***" in log and "api_key=***&x=1" in log and "key=***" in log
    assert ADMIN not in log and quote(ADMIN) not in log and "sk-in-url" not in log


def test_dashboard_login_with_the_admin_key(mgr):
    with httpx.Client(base_url=mgr.url, timeout=30, trust_env=False) as c:
        r = c.get("/dashboard", follow_redirects=True)
        assert r.status_code == 200 and 'name="password"' in r.text  # Panel's login page, not the WebUI
        assert str(r.url).split("?")[0].endswith("/login")
        bad = c.post("/login", data={"username": "admin", "password": "nope"}, follow_redirects=True)
        assert "Invalid username or password" in bad.text
        assert c.get("/dashboard").status_code == 302
        ok = c.post("/login", data={"username": "admin", "password": ADMIN})
        assert ok.status_code == 302
        page = c.get("/dashboard")
        assert page.status_code == 200 and re.search(r"bokeh|panel", page.text, re.I) and 'name="password"' not in page.text


def test_config_never_shows_the_keys(mgr):
    program = mgr.http.get("/api/config", headers=bearer(ADMIN)).json()["program"]
    assert program["admin_key"] == "***" and program["metrics_key"] == "***"
