"""Keys, budgets, rate limits, usage, cost and metrics through a real manager process."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import openai
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until

ADMIN = "sk-admin-test"
USER = "sk-user-test"
PRICING = {"input": 1.0, "output": 2.0, "per": 1000}  # per 1,000 tokens, so costs are easy to check


@pytest.fixture(scope="module")
def mgr(tmp_path_factory):
    doc = config_doc({
        "chat": fake_model("Chat", pricing=PRICING),
        "embed": fake_model("Embedding", pricing={"input": 0.5, "output": 0, "per": 1000}),
        "limited": fake_model("Chat"),
    }, admin_key=ADMIN, flush_interval=0.2,
        api_keys=[{"key": USER, "name": "user"}, {"key": "sk-chat-only", "name": "chatonly", "models": ["chat"]},
                  {"key": "sk-slow", "name": "slow", "rpm": 3}],
        budgets=[{"name": "limited tokens", "scope": "key", "key": "chatonly", "period": "day", "limit": 60,
                  "unit": "tokens"}])
    m = ManagerProcess(tmp_path_factory.mktemp("acct"), doc)
    m.http.headers["Authorization"] = f"Bearer {ADMIN}"
    yield m
    m.stop()


def ask(mgr, key, model="chat", max_tokens=4, **extra):
    return httpx.post(mgr.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"} if key else {},
                      json={"model": model, "messages": [{"role": "user", "content": "one two three"}],
                            "max_tokens": max_tokens, **extra}, timeout=30)


def test_keys_are_required_and_checked(mgr):
    r = ask(mgr, None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert ask(mgr, "sk-wrong").status_code == 401
    assert ask(mgr, USER).status_code == 200
    r = ask(mgr, "sk-chat-only", model="limited")
    assert r.status_code == 403 and "may not use model limited" in r.json()["error"]["message"]


def test_management_needs_the_admin_key(mgr):
    assert httpx.get(mgr.url + "/api/models-info").status_code == 401
    assert httpx.get(mgr.url + "/api/models-info", headers={"Authorization": f"Bearer {USER}"}).status_code == 401
    assert mgr.http.get("/api/models-info").status_code == 200
    assert httpx.get(mgr.url + "/api/health").status_code == 200  # liveness stays open


def test_key_lifecycle_over_the_api(mgr):
    r = mgr.http.post("/api/keys", json={"name": "notebook", "models": ["chat"]})
    assert r.status_code == 201
    created = r.json()
    secret = created["key"]
    assert secret.startswith("sk-llm-") and created["prefix"] == secret[:12]
    listed = mgr.http.get("/api/keys").json()["keys"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert mine["models"] == ["chat"] and "key" not in mine and secret not in str(listed)
    client = openai.OpenAI(base_url=mgr.url + "/v1", api_key=secret, max_retries=0)
    assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}],
                                          max_tokens=1).choices
    assert mgr.http.delete(f"/api/keys/{created['id']}").json() == {"id": created["id"], "revoked": True}
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=1)


def test_per_key_rate_limit_gives_429_with_retry_after(mgr):
    codes = [ask(mgr, "sk-slow", max_tokens=1).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    r = ask(mgr, "sk-slow", max_tokens=1)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "requests/minute" in r.json()["error"]["message"]


def test_budget_exhaustion_says_which_budget_and_when_it_resets(mgr):
    statuses = [ask(mgr, "sk-chat-only", max_tokens=10).status_code for _ in range(6)]
    assert 429 in statuses and statuses[0] == 200
    r = ask(mgr, "sk-chat-only", max_tokens=10)
    err = r.json()["error"]
    assert r.status_code == 429 and err["code"] == "budget_exceeded"
    assert "budget 'limited tokens' exhausted" in err["message"] and "resets at" in err["message"]
    assert ask(mgr, USER).status_code == 200  # other keys are not affected
    budgets = mgr.http.get("/api/budgets").json()["budgets"]
    assert budgets[0]["used"] >= 60 and budgets[0]["limit"] == 60
    events = mgr.http.get("/api/events").json()["events"]
    assert {e["detail"].split(" at ")[1].split(" %")[0] for e in events if e["kind"] == "budget"} >= {"50", "80", "100"}


def test_usage_and_cost_are_counted_streams_included(mgr):
    before = mgr.http.get("/api/usage/summary").json()
    client = openai.OpenAI(base_url=mgr.url + "/v1", api_key=USER, max_retries=0)
    r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "a b c"}], max_tokens=5)
    stream = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "a b c"}],
                                            max_tokens=7, stream=True)
    assert all(chunk.usage is None for chunk in stream)
    emb = client.embeddings.create(model="embed", input="hello world")
    recent = mgr.http.get("/api/usage/recent", params={"limit": 3}).json()["requests"]
    assert [x["endpoint"] for x in recent] == ["chat/completions", "chat/completions", "embeddings"]
    plain, streamed, embedded = recent
    assert plain["completion_tokens"] == 5 and plain["prompt_tokens"] == r.usage.prompt_tokens
    assert streamed["completion_tokens"] == 7 and streamed["stream"] and not streamed["estimated"]
    assert embedded["prompt_tokens"] == emb.usage.prompt_tokens
    expected = (plain["prompt_tokens"] * 1.0 + 5 * 2.0) / 1000
    assert plain["cost"] == pytest.approx(expected)
    assert plain["key_id"] == "cfg:user" and plain["ttft_ms"] > 0 and plain["total_ms"] >= plain["ttft_ms"]
    after = mgr.http.get("/api/usage/summary").json()
    added = after["total_cost"] - before["total_cost"]
    assert added == pytest.approx(sum(x["cost"] for x in recent))
    chat_row = next(x for x in after["by_model"] if x["model"] == "chat")
    assert chat_row["requests"] >= 2
    assert after["forecast"]["month_end_forecast"] >= after["forecast"]["month_to_date_cost"] > 0
    by_key = mgr.http.get("/api/usage/by/key").json()["rows"]
    assert any(row["key_id"] == "cfg:user" for row in by_key)


@pytest.mark.parametrize("days", ["lots", None, -3, True])
def test_reprice_with_bad_days_is_a_400(mgr, days):
    r = mgr.http.post("/api/usage/reprice", json={"pricing": {}, "days": days})
    assert r.status_code == 400 and r.json()["error"]["param"] == "days", r.text


def test_reprice_and_set_price(mgr):
    ask(mgr, USER)
    r = mgr.http.post("/api/usage/reprice", json={"pricing": {"chat": {"input": 2.0, "output": 4.0, "per": 1000}}})
    body = r.json()
    chat = next(x for x in body["by_model"] if x["model"] == "chat")
    assert chat["repriced"] == pytest.approx(2 * chat["current"])
    mgr.http.put("/api/pricing/chat", json={"input": 0, "output": 0, "per": 1000})
    ask(mgr, USER)
    assert mgr.http.get("/api/usage/recent", params={"limit": 1}).json()["requests"][0]["cost"] == 0
    mgr.http.put("/api/pricing/chat", json=PRICING)


def test_prometheus_metrics(mgr):
    ask(mgr, USER)
    text = mgr.http.get("/api/metrics").text
    assert 'llm_requests_total{endpoint="chat/completions",model="chat",status="200"}' in text
    assert 'llm_model_state{model="chat",state="ready"} 1.0' in text
    assert "llm_time_to_first_token_seconds_bucket" in text and 'llm_tokens_total{kind="completion",model="chat"}' in text


def committed_rows(db: Path) -> int:
    """Request rows committed to the SQLite file, read by another connection as a later process would."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM request_log").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        conn.close()


def test_rows_survive_kill_9_after_the_flush_interval(tmp_path):
    from llm_manager.accounting.store import UsageStore

    m = ManagerProcess(tmp_path, config_doc({"chat": fake_model("Chat")}, flush_interval=0.2))
    try:
        for _ in range(5):
            assert ask(m, None).status_code == 200
        # the writer thread flushes every 0.2 s: kill only once the rows are committed to the database file
        assert wait_until(lambda: committed_rows(m.data_dir / "usage.db") == 5, timeout=10), "never flushed"
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(5)
    finally:
        m.stop()
    store = UsageStore(None, m.data_dir, flush_interval=60)
    try:
        assert len(store.requests_frame()) == 5
        kinds = set(store.events_frame()["kind"])
        assert {"start", "ready"} <= kinds
    finally:
        store.close()


def test_keys_cli_and_python_client(mgr):
    import subprocess
    import sys

    from llm_manager.client import Client

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "llm_manager.cli", "keys", *args, "--url", mgr.url,
                               "--admin-key", ADMIN], capture_output=True, text=True, timeout=60)

    r = cli("create", "from-cli", "--models", "chat")
    assert r.returncode == 0, r.stderr
    key_id = r.stdout.split()[2]
    secret = r.stdout.strip().splitlines()[-1]
    assert ask(mgr, secret).status_code == 200
    listing = cli("list").stdout
    assert key_id in listing and "from-cli" in listing and "models=chat" in listing and secret not in listing
    assert cli("revoke", key_id).returncode == 0
    assert ask(mgr, secret).status_code == 401
    client = Client(mgr.url, api_key=ADMIN)
    df = client.usage_frame(days=1)
    assert {"model", "prompt_tokens", "completion_tokens", "cost", "time"} <= set(df.columns) and len(df) > 5
    assert client.usage_summary()["total_requests"] >= len(df) - 1


def test_dashboard_asks_for_the_admin_key(mgr):
    r = httpx.get(mgr.url + "/dashboard", follow_redirects=False)
    assert r.status_code in (302, 401) and "login" in r.headers.get("location", "login")


NO_USAGE_SERVER = '''
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _send(self, data, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send(b'{"status": "ok"}', "application/json")
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("stream"):
            events = [{"choices": [{"index": 0, "delta": {"content": w + " "}}]} for w in "one two three".split()]
            data = "".join("data: " + json.dumps(e) + "\\n\\n" for e in events) + "data: [DONE]\\n\\n"
            self._send(data.encode(), "text/event-stream")
        else:
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "twelve chars"}}]}
            self._send(json.dumps(answer).encode(), "application/json")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


def test_usage_is_estimated_when_the_upstream_reports_none(tmp_path):
    import sys

    from helpers import free_port

    (tmp_path / "server.py").write_text(NO_USAGE_SERVER)
    model = {"mode": "Chat", "port": free_port(), "command": [sys.executable, str(tmp_path / "server.py")],
             "default": {"required_devices": [], "memory_mb": {}}}
    (tmp_path / "run").mkdir()
    m = ManagerProcess(tmp_path / "run", config_doc({"plain": model}))
    try:
        body = {"model": "plain", "messages": [{"role": "user", "content": "a fairly long prompt " * 10}]}
        assert m.http.post("/v1/chat/completions", json=body).status_code == 200
        with m.http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            assert sum(line.startswith("data:") for line in r.iter_lines()) == 4
        plain, streamed = m.http.get("/api/usage/recent", params={"limit": 2}).json()["requests"]
        assert plain["estimated"] and streamed["estimated"]
        assert plain["prompt_tokens"] > 20 and plain["completion_tokens"] > 0
        assert streamed["completion_tokens"] == 3  # one per streamed content event, [DONE] not counted
    finally:
        m.stop()


def test_stream_the_client_closes_right_after_done_is_counted_as_served(tmp_path):
    """The openai SDK hangs up at [DONE]; the upstream's body ends 0.2 s later: still a 200 with its tokens."""
    m = ManagerProcess(tmp_path, config_doc({"chat": fake_model("Chat", args=["--done-delay", "0.2"])}))
    try:
        client = openai.OpenAI(base_url=m.url + "/v1", api_key="none", max_retries=0)
        for _ in range(3):
            list(client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}],
                                                max_tokens=4, stream=True))

        def recent() -> list[dict]:
            return m.http.get("/api/usage/recent", params={"limit": 3}).json()["requests"]

        # each row is recorded when the upstream's body ends, 0.2 s after the client hung up
        wait_until(lambda: len(recent()) == 3, timeout=10)
        rows = recent()
        assert [(r["status"], r["completion_tokens"], r["estimated"]) for r in rows] == [(200, 4, False)] * 3
    finally:
        m.stop()
