"""Several instances of a model, remote upstreams, failover and fallbacks (issue 16), with the official openai client
against a real manager and real fake-backend processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.helpers import ManagerProcess, config_doc, fake_model, free_port, pids_alive, wait_until

ROOT = Path(__file__).resolve().parents[2]


def client(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def chat(c: openai.OpenAI, model: str, tokens: int = 4) -> tuple[Any, dict[str, str]]:
    """One non-streamed chat; the answer and its headers."""
    raw = c.chat.completions.with_raw_response.create(model=model, max_tokens=tokens,
                                                       messages=[{"role": "user", "content": "hi"}])
    return raw.parse(), dict(raw.headers)


def instances(mgr: ManagerProcess, model: str) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in mgr.models()[model]["instances"]}


def events(mgr: ManagerProcess, kind: str) -> list[dict[str, Any]]:
    return [e for e in mgr.http.get("/api/events").json()["events"] if e["kind"] == kind]


def usage_rows(mgr: ManagerProcess, n: int) -> list[dict[str, Any]]:
    def rows() -> list[dict[str, Any]] | None:
        got = mgr.http.get("/api/usage/recent", params={"limit": 200}).json()["requests"]
        return got if len(got) >= n else None

    found = wait_until(rows, 10)
    assert found, "usage rows did not arrive"
    return found


class Backend:
    """A fake backend the manager did not start: a remote upstream (optionally behind an API key)."""

    def __init__(self, port: int, *args: str):
        self.port, self.args = port, args
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "llm_manager.testing.fake_backend", "--port",
                                      str(self.port), "--quiet", *self.args], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import httpx

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/v1/models", timeout=1).status_code in (200, 401)
            except httpx.HTTPError:
                return False

        assert wait_until(up, 20), "remote fake backend did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def remotes() -> Any:
    started: list[Backend] = []

    def make(*args: str) -> Backend:
        b = Backend(free_port(), *args)
        started.append(b)
        return b

    yield make
    for b in started:
        if b.proc and b.proc.poll() is None:
            b.kill()


def test_requests_spread_across_ready_instances(tmp_path: Path) -> None:
    model = fake_model(args=["--tokens-per-second", "40"], max_instances=2, min_instances=2, max_concurrency=2,
                       ports=[free_port(), free_port()])
    mgr = ManagerProcess(tmp_path, config_doc({"chat": model}))
    try:
        wait_until(lambda: all(i["state"] == "ready" for i in instances(mgr, "chat").values()), 30)
        c = client(mgr)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: chat(c, "chat", 8), range(8)))
        served = Counter(h["x-llm-manager-instance"] for _, h in answers)
        assert set(served) == {"chat", "chat@1"} and min(served.values()) >= 2, served
        assert {h["x-llm-manager-model"] for _, h in answers} == {"chat"}
        rows = usage_rows(mgr, 8)
        assert Counter(r["instance"] for r in rows[:8]) == served
        ports = {i["port"] for i in instances(mgr, "chat").values()}
        assert ports == set(model["ports"])
    finally:
        mgr.stop()


def test_a_queue_scales_up_and_idle_instances_scale_down(tmp_path: Path) -> None:
    model = fake_model(args=["--tokens-per-second", "20"], max_instances=2, max_concurrency=1, scale_up_after=0.3,
                       ttl=2, ports=[free_port(), free_port()])
    mgr = ManagerProcess(tmp_path, config_doc({"chat": model}))
    try:
        c = client(mgr)
        with ThreadPoolExecutor(12) as pool:  # 12 s of work for one instance: time enough to start another
            answers = list(pool.map(lambda _: chat(c, "chat", 20), range(12)))
        assert {h["x-llm-manager-instance"] for _, h in answers} == {"chat", "chat@1"}
        up = events(mgr, "scale-up")
        assert up and up[0]["instance"] == "chat@1" and "queued" in up[0]["detail"], up
        assert wait_until(lambda: all(i["state"] == "stopped" for i in instances(mgr, "chat").values()), 15)
        down = events(mgr, "scale-down")  # the first to idle out while the other still ran (min_instances 0)
        assert len(down) == 1 and "idle for" in down[0]["detail"] and down[0]["instance"] in ("chat", "chat@1"), down
    finally:
        mgr.stop()


def test_an_instance_killed_mid_traffic_loses_no_request(tmp_path: Path) -> None:
    model = fake_model(args=["--tokens-per-second", "30"], max_instances=2, min_instances=2, max_concurrency=4,
                       ports=[free_port(), free_port()])
    mgr = ManagerProcess(tmp_path, config_doc({"chat": model}))
    try:
        wait_until(lambda: all(i["state"] == "ready" for i in instances(mgr, "chat").values()), 30)
        c = client(mgr)
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(chat, c, "chat", 12) for _ in range(16)]
            assert wait_until(lambda: instances(mgr, "chat")["chat@1"]["in_flight"] > 0, 10)
            os.kill(instances(mgr, "chat")["chat@1"]["pid"], signal.SIGKILL)
            answers = [f.result() for f in futures]  # every one answered: none raised
        assert all(a.choices[0].message.content for a, _ in answers)
        assert any(h["x-llm-manager-instance"] == "chat" for _, h in answers)
        assert events(mgr, "crash"), "the killed instance was not noticed"
    finally:
        mgr.stop()


def test_stopping_a_model_stops_every_instance(tmp_path: Path) -> None:
    model = fake_model(max_instances=3, min_instances=3, ports=[free_port(), free_port(), free_port()])
    mgr = ManagerProcess(tmp_path, config_doc({"chat": model}))
    try:
        wait_until(lambda: all(i["state"] == "ready" for i in instances(mgr, "chat").values()), 30)
        pids = [i["pid"] for i in instances(mgr, "chat").values()]
        assert len(set(pids)) == 3 and not any(p is None for p in pids)
        stopped_at = time.time()
        mgr.http.post("/api/models/chat/stop", json={}).raise_for_status()
        assert all(i["state"] == "stopped" for i in instances(mgr, "chat").values())
        assert wait_until(lambda: not pids_alive(pids), 10)
        assert not [e for e in events(mgr, "scale-up") if "min_instances" in e["detail"] and e["ts"] > stopped_at]
    finally:
        mgr.stop()


def test_a_remote_upstream_with_a_key_serves_and_cools_down_and_comes_back(tmp_path: Path, remotes: Any) -> None:
    backend = remotes("--api-key", "sk-remote-secret", "--model", "upstream-name")
    doc = config_doc({"cloud": {"mode": "Chat", "upstreams": [{"url": backend.url, "api_key": "sk-remote-secret",
                                                                "model": "upstream-name"}]}})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        c = client(mgr)
        answer, headers = chat(c, "cloud")
        assert answer.choices[0].message.content and headers["x-llm-manager-instance"] == f"127.0.0.1:{backend.port}"
        assert "sk-remote-secret" not in mgr.http.get("/api/config").text
        backend.kill()
        with pytest.raises(openai.APIStatusError) as err:
            chat(c, "cloud")
        assert err.value.status_code in (502, 503)
        up = mgr.models()["cloud"]["upstreams"][0]
        assert up["healthy"] is False and up["failures"] >= 1 and up["cooling_s"] > 0
        with pytest.raises(openai.APIStatusError) as err:  # cooling: refused without a connection attempt
            chat(c, "cloud")
        assert err.value.status_code == 503 and "every upstream" in err.value.message
        backend.start()  # the same port again: the health check brings it back
        assert wait_until(lambda: mgr.models()["cloud"]["upstreams"][0]["healthy"], 20)
        assert chat(c, "cloud")[0].choices[0].message.content
        kinds = [e["kind"] for e in mgr.http.get("/api/events").json()["events"] if e["model"] == "cloud"]
        assert "upstream-down" in kinds and "upstream-up" in kinds
        assert "sk-remote-secret" not in mgr.log_path.read_text()
    finally:
        mgr.stop()


def test_a_503_from_one_upstream_is_retried_on_another(tmp_path: Path, remotes: Any) -> None:
    loading = remotes("--load-delay", "600")  # answers 503 "Loading model" to every inference request
    fine = remotes()
    doc = config_doc({"pair": {"mode": "Chat", "upstreams": [{"url": loading.url, "weight": 10}, {"url": fine.url}]}})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        c = client(mgr)
        served = {chat(c, "pair")[1]["x-llm-manager-instance"] for _ in range(4)}
        assert served == {f"127.0.0.1:{fine.port}"}
        ups = {u["id"]: u for u in mgr.models()["pair"]["upstreams"]}
        assert ups[f"127.0.0.1:{loading.port}"]["failures"] >= 1
    finally:
        mgr.stop()


def test_fallbacks_on_no_capacity_start_failure_and_a_full_queue(tmp_path: Path) -> None:
    doc = config_doc({
        "big": fake_model(memory={"gpu": 20000}, fallbacks=["small"]),
        "broken": fake_model(args=["--fail-start"], fallbacks=["small"]),
        "busy": fake_model(args=["--tokens-per-second", "10"], max_concurrency=1, max_queue=0, fallbacks=["small"]),
        "small": fake_model(aliases=["small-alias"]),
    }, gpus={"gpu": 10000})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        c = client(mgr)
        for name in ("big", "broken"):
            answer, headers = chat(c, name)
            assert headers["x-llm-manager-model"] == "small" and headers["x-llm-manager-instance"] == "small"
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(chat, c, "busy", 20)
            assert wait_until(lambda: mgr.models()["busy"]["in_flight"] == 1, 15)
            _, headers = chat(c, "busy")
            assert headers["x-llm-manager-model"] == "small"
            assert slow.result()[1]["x-llm-manager-model"] == "busy"
        rows = usage_rows(mgr, 4)
        by_alias = {r["alias"]: r for r in rows}
        assert by_alias["big"]["model"] == "small" and by_alias["broken"]["model"] == "small"
        assert mgr.models()["big"]["state"] == "stopped"
    finally:
        mgr.stop()


def test_a_stream_through_instances_says_who_served_it(tmp_path: Path) -> None:
    model = fake_model(max_instances=2, ports=[free_port(), free_port()])
    mgr = ManagerProcess(tmp_path, config_doc({"chat": model}))
    try:
        mgr.http.post("/api/models/chat/start", params={"wait": 1}).raise_for_status()  # warm: no loading comments
        with client(mgr).chat.completions.with_streaming_response.create(
                model="chat", max_tokens=5, stream=True, messages=[{"role": "user", "content": "hi"}]) as resp:
            assert resp.headers["x-llm-manager-model"] == "chat"
            assert resp.headers["x-llm-manager-instance"] == "chat"
            text = "".join(ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices)
        assert len(text.split()) == 5
    finally:
        mgr.stop()


def test_a_second_instance_lands_on_the_other_gpu_and_the_planner_says_so_first(tmp_path: Path) -> None:
    block = fake_model(max_instances=2, min_instances=1, max_concurrency=1, ports=[free_port(), free_port()])
    command = block.pop("command")
    block.pop("gpu")
    block["card0"] = {"required_devices": ["gpu0"], "memory_mb": {"gpu0": 6000}, "command": command}
    block["card1"] = {"required_devices": ["gpu1"], "memory_mb": {"gpu1": 6000}, "command": command}
    mgr = ManagerProcess(tmp_path, config_doc({"chat": block}, gpus={"gpu0": 24000, "gpu1": 24000}))
    try:
        assert wait_until(lambda: instances(mgr, "chat")["chat"]["state"] == "ready", 30)
        assert instances(mgr, "chat")["chat"]["profile"] == "card0"
        plan = mgr.http.get("/api/plan/chat", params={"more": 1}).json()
        assert plan["fits"] and plan["model"] == "chat@1" and plan["profile"] == "card1", plan
        assert mgr.http.get("/api/plan/chat").json()["running"] == "ready"
        doc = json.loads(mgr.config_path.read_text())
        doc["chat"]["min_instances"] = 2
        mgr.http.put("/api/config", json=doc).raise_for_status()
        assert wait_until(lambda: all(i["state"] == "ready" for i in instances(mgr, "chat").values()), 30)
        assert {i["id"]: i["profile"] for i in instances(mgr, "chat").values()} == {"chat": "card0", "chat@1": "card1"}
        metrics = mgr.http.get("/api/metrics").text
        assert 'llm_instance_ready{instance="chat@1",model="chat"} 1.0' in metrics
    finally:
        mgr.stop()
