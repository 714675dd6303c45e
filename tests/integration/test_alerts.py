"""Alerts through real managers and a webhook receiver on loopback in this process: signed JSON, retries with
back-off, history kept in the store across restarts, one alert per transition, and a hanging webhook that
never slows the proxy."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until, wait_until_async

from llm_manager.accounting.alerts import verify_signature
from llm_manager.config.parse import parse_config
from llm_manager.service import build

SECRET = "whsec-test-secret-do-not-log"
CHAT = {"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 4}


class Receiver:
    """A webhook endpoint on 127.0.0.1: records every POST; answers 500 to the first ``fail_first`` tries of each
    alert, or holds every request until ``release`` is set."""

    def __init__(self, fail_first: int = 0, hang: bool = False):
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.tries: Counter[str] = Counter()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if hang:
                    outer.release.wait(60)
                alert = self.headers.get("X-LLM-Manager-Alert", "")
                outer.tries[alert] += 1
                self.send_response(500 if outer.tries[alert] <= fail_first else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> dict[str, dict[str, Any]]:
        return {json.loads(body)["id"]: json.loads(body) for _, body in self.posts}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def signed_by(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """The receiver's check, done by hand: HMAC-SHA256 over "<timestamp>." + body, and a recent timestamp."""
    stamp = headers["x-llm-manager-timestamp"]
    want = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, headers["x-llm-manager-signature"]) and abs(time.time() - int(stamp)) < 300


@pytest.fixture(scope="module")
def hooks():
    signed, crash_only, stuck = Receiver(fail_first=2), Receiver(), Receiver(hang=True)
    yield signed, crash_only, stuck
    for r in (signed, crash_only, stuck):
        r.close()


def alerts_doc(signed: Receiver, crash_only: Receiver, stuck: Receiver) -> dict[str, Any]:
    return config_doc(
        {"chat": fake_model("Chat"), "crashy": fake_model("Chat", args=["--fail-start"])}, flush_interval=0.05,
        api_keys=[{"key": "sk-budgeted", "name": "budgeted"}, {"key": "sk-free", "name": "free"}],
        budgets=[{"name": "tiny", "scope": "key", "key": "budgeted", "period": "day", "limit": 10, "unit": "tokens"}],
        alerts={"webhooks": [
            {"url": signed.url, "secret": SECRET, "kinds": ["budget", "crash"], "retries": 3},
            {"url": crash_only.url, "kinds": ["crash"]},
            {"url": stuck.url, "secret": SECRET, "kinds": ["store"], "retries": 0, "timeout": 60}]})


@pytest.fixture(scope="module")
def mgr(hooks, tmp_path_factory):
    m = ManagerProcess(tmp_path_factory.mktemp("alerts"), alerts_doc(*hooks))
    yield m
    m.stop()


def ask(mgr: ManagerProcess, key: str) -> httpx.Response:
    return httpx.post(mgr.url + "/v1/chat/completions", json={"model": "chat", **CHAT},
                      headers={"Authorization": f"Bearer {key}"}, timeout=30)


def history(mgr: ManagerProcess, **params: Any) -> list[dict[str, Any]]:
    r = mgr.http.get("/api/alerts", params=params)
    assert r.status_code == 200, r.text
    return r.json()["alerts"]


def test_budget_and_crash_loop_alerts_are_signed_retried_logged_and_kept(mgr, hooks, tmp_path):
    signed, crash_only, _ = hooks
    assert ask(mgr, "sk-budgeted").status_code == 200  # > 10 tokens: 50, 80 and 100 % at once
    for _ in range(3):  # the second failure in a row is a crash loop; the third is the same loop
        mgr.http.post("/api/models/crashy/start", params={"wait": "1"})
        wait_until(lambda: mgr.models()["crashy"]["state"] == "failed")
    # four alerts, each failed twice and then delivered (back-off 0.5 s, then 1 s)
    assert wait_until(lambda: len(signed.posts) == 4 * 3 and len(crash_only.posts) == 1, timeout=20), (
        signed.tries, crash_only.alerts())
    kinds = sorted((a["kind"], a["details"].get("percent")) for a in signed.alerts().values())
    assert kinds == [("budget", 50), ("budget", 80), ("budget", 100), ("crash", None)]
    (loop,) = crash_only.alerts().values()
    assert loop["subject"] == "crashy" and loop["state"] == "firing" and loop["details"]["failures"] == 2

    # every try of every alert carries a valid signature; each alert took three tries with the same body
    assert len(signed.alerts()) == 4 and set(signed.tries.values()) == {3}
    for headers, body in signed.posts:
        assert signed_by(headers, body, SECRET)
        assert verify_signature(SECRET, body, headers["x-llm-manager-timestamp"], headers["x-llm-manager-signature"])
        assert not verify_signature("wrong", body, headers["x-llm-manager-timestamp"],
                                    headers["x-llm-manager-signature"])
        assert headers["x-llm-manager-alert"] == json.loads(body)["id"]
    bodies: dict[str, set[bytes]] = {}
    for headers, body in signed.posts:
        bodies.setdefault(headers["x-llm-manager-alert"], set()).add(body)
    assert all(len(b) == 1 for b in bodies.values())
    assert "x-llm-manager-signature" not in crash_only.posts[0][0]  # no secret, no signature

    def delivered() -> list[dict[str, Any]] | None:
        rows = history(mgr)
        done = all(s.startswith("delivered") for r in rows for s in r["delivery"].values())
        return rows if len(rows) == 4 and done else None

    rows = wait_until(delivered, timeout=10)
    assert rows, history(mgr)
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)  # newest first
    crash = next(r for r in rows if r["kind"] == "crash")
    assert crash["delivery"] == {signed.url: "delivered (attempt 3)", crash_only.url: "delivered"}
    assert all(r["delivery"] == {signed.url: "delivered (attempt 3)"} for r in rows if r["kind"] == "budget")
    assert history(mgr, limit=1) == rows[:1]
    assert mgr.http.get("/api/alerts", params={"limit": "x"}).status_code == 400

    log = mgr.log_path.read_text()
    assert "WARNING llm_manager.accounting.alerts: alert crash (firing): model crashy is crash-looping" in log
    assert log.count("alert budget (firing)") == 3
    assert SECRET not in log and SECRET not in json.dumps(rows)


def test_store_failure_alerts_once_each_way_and_a_hanging_webhook_never_slows_requests(mgr, hooks):
    _, _, stuck = hooks
    db = mgr.data_dir / "usage.db"
    rename(db, "request_log", "request_log_away")  # every flush of a request row now fails
    try:
        assert ask(mgr, "sk-free").status_code == 200
        assert wait_until(lambda: len(stuck.posts) == 1, timeout=15), "no store alert posted"
        # The store webhook now holds its delivery open. Requests still complete, one after another:
        for _ in range(20):
            assert ask(mgr, "sk-free").status_code == 200
        assert not stuck.release.is_set() and len(stuck.posts) == 1  # still stuck, still one alert
        (alert,) = [a for a in history(mgr) if a["kind"] == "store"]
        assert alert["state"] == "firing" and "no such table: request_log" in alert["message"]
        assert alert["delivery"] == {stuck.url: "pending"}
    finally:
        rename(db, "request_log_away", "request_log")
    assert wait_until(lambda: len(stuck.posts) == 2, timeout=15), "no resolved alert"
    resolved = json.loads(stuck.posts[1][1])
    assert (resolved["kind"], resolved["state"], resolved["message"]) == ("store", "resolved",
                                                                          "usage store: writes work again")
    stuck.release.set()
    assert wait_until(lambda: all(a["delivery"] == {stuck.url: "delivered"}
                                  for a in history(mgr) if a["kind"] == "store"), timeout=10)
    assert len([a for a in history(mgr) if a["kind"] == "store"]) == 2


def test_history_survives_a_restart(mgr, hooks):
    before = history(mgr)
    assert len(before) >= 4
    mgr.stop()
    again = ManagerProcess(mgr.tmp, alerts_doc(*hooks))  # same data dir, a new process
    try:
        after = history(again)
        assert [(a["id"], a["kind"], a["message"]) for a in after] == [(a["id"], a["kind"], a["message"])
                                                                        for a in before]
    finally:
        again.stop()


def rename(db: Path, old: str, new: str) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
    conn.close()


async def test_a_device_alerts_when_it_goes_offline_and_back_not_per_sample(tmp_path):
    hook, later = Receiver(), Receiver()
    doc = config_doc({}, gpus={"gpu": 8000}, monitor_interval=0.05,
                     alerts={"webhooks": [{"url": hook.url, "secret": SECRET, "kinds": ["device"]}], "log": False})
    service = build(parse_config(doc, tmp_path), tmp_path / "data")
    await service.start()
    try:
        manager = service.manager
        sim = next(d for d in manager.devices.instances if d.device_name == "gpu")
        sim.set_online(False, "fell off the bus")
        assert await wait_until_async(lambda: len(hook.posts) == 1, timeout=10)
        seen = len(manager.device_history)
        assert await wait_until_async(lambda: len(manager.device_history) >= seen + 5)  # more offline samples
        sim.set_online(True)
        assert await wait_until_async(lambda: len(hook.posts) == 2, timeout=10)
        seen = len(manager.device_history)
        assert await wait_until_async(lambda: len(manager.device_history) >= seen + 5)
        assert len(hook.posts) == 2  # one per transition, however many samples
        down, up = (json.loads(b) for _, b in hook.posts)
        assert (down["kind"], down["state"], down["message"]) == ("device", "firing",
                                                                  "device gpu went offline: fell off the bus")
        assert (up["state"], up["message"]) == ("resolved", "device gpu is back online")
        assert all(signed_by(h, b, SECRET) for h, b in hook.posts)
        rows = await wait_until_async(lambda: [r for r in service.alerts.history()
                                               if r["delivery"] == {hook.url: "delivered"}])
        assert [r["state"] for r in rows] == ["resolved", "firing"]

        # a config reload takes new webhooks: the next alert goes to both
        doc["program"]["alerts"]["webhooks"].append({"url": later.url, "kinds": ["device", "store"]})
        await manager.reload_config(doc)
        sim = next(d for d in manager.devices.instances if d.device_name == "gpu")  # the reload made it anew
        sim.set_online(False, "unplugged")
        assert await wait_until_async(lambda: len(hook.posts) == 3 and len(later.posts) == 1, timeout=10)
        assert json.loads(later.posts[0][1])["message"] == "device gpu went offline: unplugged"
    finally:
        await service.shutdown()
        hook.close()
        later.close()
