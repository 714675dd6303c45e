"""Scale-out (issue 16) with llama.cpp's real llama-server, driven with the official openai client.

One manager, two models: ``smol``, two instances of SmolLM2 (``-t 1`` each, both started by ``min_instances``, each
on its own port from ``ports``), and ``remote-smol``, served only by a llama-server this test started itself (a
remote upstream: the manager never starts or stops it). Tests run in file order; the instance SIGKILLed
mid-traffic comes last.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from helpers import ManagerProcess, config_doc, free_port, wait_until
from real_helpers import DirectServer, kill_pids, llama_pids

from llm_manager.demo.real import RealLlama

pytestmark = pytest.mark.real

POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
INSTANCES = ("smol", "smol@1")


def llama_command(llama: RealLlama, port: str, alias: str) -> list[str]:
    return [str(llama.server), "-m", str(llama.model), "--host", "127.0.0.1", "--port", port, "-c", "2048", "-t", "1",
            "--alias", alias]


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, llama: RealLlama) -> Iterator[DirectServer]:
    """A llama-server the test launched, not the manager."""
    port = free_port()
    server = DirectServer(llama_command(llama, str(port), "upstream-smol"), port,
                          tmp_path_factory.mktemp("remote") / "llama.log")
    try:
        server.wait_healthy(120)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory, llama: RealLlama, remote: DirectServer) -> Iterator[ManagerProcess]:
    ports = [free_port(), free_port()]
    smol = {"mode": "Chat", "port": ports[0], "ports": ports, "max_instances": 2, "min_instances": 2,
            "auto_start": False, "command": llama_command(llama, "${PORT}", "smollm2"),
            "gpu": {"required_devices": [], "memory_mb": {}}}
    remote_smol = {"mode": "Chat", "upstreams": [{"url": f"{remote.url}/v1"}]}
    m = ManagerProcess(tmp_path_factory.mktemp("scale"), config_doc({"smol": smol, "remote-smol": remote_smol}))
    try:
        ready = wait_until(lambda: all(i["state"] == "ready" for i in instances(m).values()), 120, 0.2)
        assert ready, f"both instances should be ready: {instances(m)}"
        yield m
    finally:
        m.stop()
        kill_pids(llama_pids(set(ports), llama.server))  # whatever a failed test left behind


@pytest.fixture(scope="module")
def client(mgr: ManagerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=mgr.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def instances(mgr: ManagerProcess) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in mgr.models()["smol"]["instances"]}


def chat(c: openai.OpenAI, model: str, prompt: str, tokens: int) -> tuple[Any, dict[str, str]]:
    """One non-streamed chat at temperature 0; the answer and its headers."""
    raw = c.chat.completions.with_raw_response.create(model=model, max_tokens=tokens, temperature=0,
                                                       messages=[{"role": "user", "content": prompt}])
    return raw.parse(), dict(raw.headers)


def prompts(n: int) -> list[str]:
    return [f"Name a colour and a number. Request {i}." for i in range(n)]


def test_both_instances_serve_concurrent_requests(mgr: ManagerProcess, client: openai.OpenAI) -> None:
    info = instances(mgr)
    assert set(info) == set(INSTANCES)
    assert len({i["pid"] for i in info.values()}) == 2 and len({i["port"] for i in info.values()}) == 2
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda p: chat(client, "smol", p, 12), prompts(6)))
    served = Counter(h["x-llm-manager-instance"] for _, h in answers)
    assert set(served) == set(INSTANCES), served  # least-in-flight routing spreads six at once over both
    assert {h["x-llm-manager-model"] for _, h in answers} == {"smol"}
    assert all(a.choices[0].message.content and a.usage.completion_tokens > 0 for a, _ in answers)
    rows = mgr.http.get("/api/usage/recent", params={"limit": 6}).json()["requests"]
    assert Counter(r["instance"] for r in rows) == served  # the usage rows name the instance that served


def test_a_stream_through_two_instances(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
            model="smol", messages=POEM, max_tokens=16, temperature=0, stream=True,
            stream_options={"include_usage": True}) as resp:
        assert resp.headers["x-llm-manager-model"] == "smol"
        assert resp.headers["x-llm-manager-instance"] in INSTANCES
        chunks = list(resp.parse())
    # (no fixed text: llama.cpp's greedy answer moves with its prompt cache, which the earlier requests filled)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant" and len(pieces) >= 8 and "".join(pieces).strip()
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16


def test_a_remote_llama_server_serves_a_model(mgr: ManagerProcess, client: openai.OpenAI,
                                              remote: DirectServer) -> None:
    answer, headers = chat(client, "remote-smol", POEM[0]["content"], 16)
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 16
    assert headers["x-llm-manager-model"] == "remote-smol"
    assert headers["x-llm-manager-instance"] == f"127.0.0.1:{remote.port}"
    info = mgr.models()["remote-smol"]
    assert info["instances"] == [] and info["pid"] is None  # nothing launched for it
    assert [(u["id"], u["healthy"]) for u in info["upstreams"]] == [(f"127.0.0.1:{remote.port}", True)]
    row = mgr.http.get("/api/usage/recent", params={"limit": 1}).json()["requests"][0]
    assert (row["model"], row["instance"], row["completion_tokens"]) == ("remote-smol", f"127.0.0.1:{remote.port}",
                                                                         16)
    assert remote.proc.poll() is None


def test_an_instance_killed_mid_traffic_loses_no_request(mgr: ManagerProcess, client: openai.OpenAI) -> None:
    """Last: SIGKILL instance 1 while it answers; its requests are retried on instance 0 and every one is answered."""
    victim = instances(mgr)["smol@1"]["pid"]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(chat, client, "smol", p, 32) for p in prompts(12)]
        assert wait_until(lambda: instances(mgr)["smol@1"]["in_flight"] > 0, 60), "instance 1 got no request"
        os.kill(victim, signal.SIGKILL)
        answers = [f.result() for f in futures]  # every one answered: none raised
    assert all(a.choices[0].message.content and a.usage.completion_tokens > 0 for a, _ in answers)
    assert any(h["x-llm-manager-instance"] == "smol" for _, h in answers)
    crashes = wait_until(lambda: [e for e in mgr.http.get("/api/events").json()["events"]
                                  if e["kind"] == "crash" and e.get("instance") == "smol@1"], 10)
    assert crashes, "the killed instance was not noticed"
