"""Faster swaps where the server allows it (issue 19): ``unload: "sleep"`` puts an idle or evicted instance to sleep
(vLLM's sleep mode: the process stays, its device memory is freed) and wakes it on the next request. The fake
backend implements /sleep, /wake_up and /is_sleeping."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import ManagerProcess, config_doc, fake_model, pids_alive, wait_until

BODY = {"max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}


def ask(mgr: ManagerProcess, model: str) -> httpx.Response:
    r = mgr.http.post("/v1/chat/completions", json={**BODY, "model": model})
    assert r.status_code == 200, r.text
    return r


def used_mb(mgr: ManagerProcess) -> int:
    return next(d for d in mgr.http.get("/api/devices", params={"fresh": 1}).json()["devices"]
                if d["name"] == "gpu")["used_memory_mb"]


def sleeping(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/is_sleeping", timeout=5).json()["is_sleeping"]


def test_eviction_puts_a_model_to_sleep_and_a_request_wakes_it(tmp_path: Path) -> None:
    doc = config_doc({"a": fake_model(memory={"gpu": 8000}, args=["--wake-time", "0.3"], unload="sleep"),
                      "b": fake_model(memory={"gpu": 8000}, unload="sleep")}, gpus={"gpu": 10000})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        ask(mgr, "a")
        pid_a, port_a = mgr.models()["a"]["pid"], mgr.models()["a"]["port"]
        ask(mgr, "b")  # a no longer fits beside b: it sleeps instead of stopping
        assert mgr.models()["a"]["state"] == "sleeping" and pids_alive([pid_a]) == [pid_a]
        assert sleeping(port_a) and used_mb(mgr) == 8000  # only b holds memory now
        pid_b = mgr.models()["b"]["pid"]
        ask(mgr, "a")  # wakes a (b goes to sleep): the same process, no new launch
        info = mgr.models()["a"]
        assert info["state"] == "ready" and info["pid"] == pid_a and mgr.launches("a") == 1
        assert not sleeping(port_a) and mgr.models()["b"]["state"] == "sleeping" and pids_alive([pid_b]) == [pid_b]
        kinds = [e["kind"] for e in mgr.http.get("/api/events").json()["events"] if e["model"] == "a"]
        assert kinds.count("sleep") == 1 and "wake" in kinds
        ready = [e for e in mgr.http.get("/api/events").json()["events"] if e["model"] == "a" and e["kind"] == "ready"]
        assert "wake" in ready[-1]["detail"] and "wake" in ready[-1]["phases"]
        mgr.http.post("/api/models/b/stop", json={}).raise_for_status()  # a stop ends a sleeping process too
        assert mgr.models()["b"]["state"] == "stopped" and wait_until(lambda: not pids_alive([pid_b]), 10)
    finally:
        mgr.stop()


def test_an_idle_model_sleeps_after_its_ttl_and_wakes_on_the_next_request(tmp_path: Path) -> None:
    doc = config_doc({"m": fake_model(memory={"gpu": 4000}, unload="sleep", ttl=1)}, gpus={"gpu": 10000})
    mgr = ManagerProcess(tmp_path, doc)
    try:
        ask(mgr, "m")
        pid = mgr.models()["m"]["pid"]
        assert wait_until(lambda: mgr.models()["m"]["state"] == "sleeping", 10)
        assert used_mb(mgr) == 0 and pids_alive([pid]) == [pid]
        ask(mgr, "m")
        assert mgr.models()["m"]["pid"] == pid and used_mb(mgr) == 4000
    finally:
        mgr.stop()

