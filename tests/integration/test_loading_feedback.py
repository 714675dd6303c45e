"""Honest feedback while a model loads (issue 19): SSE comments on a stream that waits for a cold start, and
Retry-After on 429/503 computed from what the manager learned (a start's time, a request's time, the queue)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from tests.helpers import ManagerProcess, config_doc, fake_model, wait_until

BODY = {"max_tokens": 3, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def stream_lines(mgr: ManagerProcess, model: str) -> list[str]:
    with httpx.stream("POST", mgr.url + "/v1/chat/completions", json={**BODY, "model": model}, timeout=60) as r:
        assert r.status_code == 200
        return [line for line in r.iter_lines() if line]


def test_a_stream_waiting_for_a_cold_start_gets_loading_comments(tmp_path: Path) -> None:
    doc = config_doc({"slow": fake_model(args=["--load-delay", "2.5"]),
                      "quiet": fake_model(args=["--load-delay", "2.5"], loading_feedback=False)})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        lines = stream_lines(mgr, "slow")
        first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
        comments = [line for line in lines[:first_data] if line.startswith(":")]
        assert comments and all(c.startswith(": loading slow — ") for c in comments), lines[:first_data]
        assert "of about" not in comments[0]  # nothing learned yet: no estimate
        assert lines[-1] == "data: [DONE]"
        mgr.http.post("/api/models/slow/stop", json={}).raise_for_status()
        again = [line for line in stream_lines(mgr, "slow") if line.startswith(":")]
        assert again and "s of about" in again[-1], again  # the first start taught it how long a start takes
        assert not [line for line in stream_lines(mgr, "quiet") if line.startswith(":")]  # turned off per model
        # the official client ignores the comments
        mgr.http.post("/api/models/slow/stop", json={}).raise_for_status()
        c = openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0)
        chunks = c.chat.completions.create(model="slow", max_tokens=3, stream=True,
                                           messages=[{"role": "user", "content": "hi"}])
        assert len("".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices).split()) == 3
    finally:
        mgr.stop()


def test_refusals_carry_a_retry_after_from_what_was_learned(tmp_path: Path) -> None:
    doc = config_doc({"one": fake_model(args=["--tokens-per-second", "4"], max_concurrency=1, max_queue=0),
                      "huge": fake_model(memory={"gpu": 50000})}, gpus={"gpu": 10000})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        body = {"model": "one", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        assert mgr.http.post("/v1/chat/completions", json=body).status_code == 200  # ~2 s: learned
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(mgr.http.post, "/v1/chat/completions", json=body)
            assert wait_until(lambda: mgr.models()["one"]["in_flight"] == 1, 10)
            refused = mgr.http.post("/v1/chat/completions", json=body)
            assert refused.status_code == 429
            assert 2 <= int(refused.headers["Retry-After"]) <= 4, refused.headers  # one request of ~2 s ahead
            assert busy.result().status_code == 200
        started = time.monotonic()
        r = mgr.http.post("/v1/chat/completions", json={**body, "model": "huge"})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 10
    finally:
        mgr.stop()
