"""A config reload that raises a model's max_concurrency admits the requests already waiting for it."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
from helpers import ManagerProcess, config_doc, fake_model, wait_until


def chat(mgr: ManagerProcess, max_tokens: int) -> httpx.Response:
    return mgr.http.post("/v1/chat/completions", timeout=60, json={
        "model": "one", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens})


def load(mgr: ManagerProcess) -> tuple[int, int]:
    info = mgr.models()["one"]
    return info["in_flight"], info["queued"]


def test_raising_max_concurrency_by_reload_admits_the_waiting(tmp_path):
    doc = config_doc({"one": fake_model("Chat", args=["--tokens-per-second", "2"], max_concurrency=1)})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        chat(mgr, 1)  # warm
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            slow = pool.submit(chat, mgr, 20)  # ~10 s at 2 tokens/s
            assert wait_until(lambda: load(mgr) == (1, 0)), load(mgr)
            waiting = pool.submit(chat, mgr, 1)
            assert wait_until(lambda: load(mgr) == (1, 1)), load(mgr)
            doc["one"]["max_concurrency"] = 2
            r = mgr.http.put("/api/config", json=json.loads(json.dumps(doc)))
            assert r.status_code == 200 and r.json()["changed"] == ["one"], r.text
            # admitted at once, not when the slow one releases its slot
            assert waiting.result(timeout=8).status_code == 200
            assert not slow.done() and load(mgr) == (1, 0)
            assert slow.result(timeout=30).status_code == 200
    finally:
        mgr.stop()
