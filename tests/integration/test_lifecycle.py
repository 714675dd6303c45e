"""Model lifecycle through a real manager: cold starts, one launch for many, queueing, eviction, idle
unload, crashes, start failures, stranger ports, and no orphans after the manager is SIGKILLed."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import stat
import sys

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model, free_port, pids_alive, wait_until

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def chat(mgr: ManagerProcess, model: str, timeout: float = 60, **extra) -> httpx.Response:
    return httpx.post(mgr.url + "/v1/chat/completions", json={"model": model, **CHAT, **extra}, timeout=timeout)


def load(mgr: ManagerProcess, model: str) -> tuple[int, int]:
    """(in flight, queued) of a model, as the manager counts them."""
    info = mgr.models()[model]
    return info["in_flight"], info["queued"]


@pytest.fixture
def make_mgr(tmp_path):
    made = []

    def make(models, gpus=None, **program):
        folder = tmp_path / f"manager{len(made)}"
        folder.mkdir()
        made.append(ManagerProcess(folder, config_doc(models, gpus, **program)))
        return made[-1]

    yield make
    for m in made:
        m.stop()


def test_twenty_concurrent_requests_for_a_cold_model_cause_one_launch(make_mgr):
    mgr = make_mgr({"cold": fake_model("Chat", args=["--load-delay", "1.0"])})
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _i: chat(mgr, "cold"), range(20)))
    assert [r.status_code for r in results] == [200] * 20
    assert mgr.launches("cold") == 1
    assert mgr.models()["cold"]["state"] == "ready"


def test_max_concurrency_queues_then_429(make_mgr):
    mgr = make_mgr({"one": fake_model("Chat", args=["--tokens-per-second", "4"], max_concurrency=1, max_queue=1)})
    chat(mgr, "one", max_tokens=1)  # warm
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(chat, mgr, "one", max_tokens=4)]
        assert wait_until(lambda: load(mgr, "one") == (1, 0)), load(mgr, "one")  # the first one runs (~1 s)
        futures.append(pool.submit(chat, mgr, "one", max_tokens=1))
        assert wait_until(lambda: load(mgr, "one") == (1, 1)), load(mgr, "one")  # the second one waits
        info = mgr.models()["one"]
        assert (info["in_flight"], info["queued"]) == (1, 1)
        third = chat(mgr, "one", max_tokens=1)
        codes = [f.result().status_code for f in futures]
    assert codes == [200, 200]
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "queue_full" and third.headers["Retry-After"] == "1"


def test_eviction_of_idle_lru_model_and_503_when_nothing_fits(make_mgr):
    mgr = make_mgr({
        "a": fake_model("Chat", memory={"gpu": 6000}),
        "b": fake_model("Chat", memory={"gpu": 6000}),
        "huge": fake_model("Chat", memory={"gpu": 20000}),
    }, gpus={"gpu": 10000})
    assert chat(mgr, "a").status_code == 200
    plan = mgr.http.get("/api/plan/b").json()
    assert plan["fits"] and plan["evict"] == ["a"]
    assert chat(mgr, "b").status_code == 200
    models = mgr.models()
    assert models["a"]["state"] == "stopped" and models["b"]["state"] == "ready"
    events = mgr.http.get("/api/events").json()["events"]
    assert any(e["kind"] == "evict" and e["model"] == "a" and "for b" in e["detail"] for e in events)
    r = chat(mgr, "huge")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "insufficient_resources"
    assert "gpu: needs 20000 MB, 10000 MB free" in err["message"] or "needs 20000 MB" in err["message"]
    assert mgr.models()["b"]["state"] == "ready"  # nothing evicted in vain


def test_busy_model_is_not_evicted(make_mgr):
    """FIFO: the start fails at once (swap-aware waits for it instead: tests/integration/test_swap_scheduling.py)."""
    mgr = make_mgr({
        "slow": fake_model("Chat", memory={"gpu": 6000}, args=["--tokens-per-second", "5"]),
        "other": fake_model("Chat", memory={"gpu": 6000}),
    }, gpus={"gpu": 10000}, scheduler="fifo")
    chat(mgr, "slow", max_tokens=1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        busy = pool.submit(chat, mgr, "slow", max_tokens=10)
        assert wait_until(lambda: load(mgr, "slow") == (1, 0)), load(mgr, "slow")  # busy for ~2 s
        r = chat(mgr, "other")
        assert r.status_code == 503 and "busy" in r.json()["error"]["message"]
        assert busy.result().status_code == 200


def test_idle_model_stops_after_ttl(make_mgr):
    mgr = make_mgr({"brief": fake_model("Chat", ttl=1)})
    assert chat(mgr, "brief").status_code == 200
    pid = mgr.models()["brief"]["pid"]
    mgr.wait_state("brief", "stopped", timeout=6)
    assert pids_alive([pid]) == []


def test_crash_is_502_then_restart_on_next_request(make_mgr):
    mgr = make_mgr({"crashy": fake_model("Chat", args=["--crash-after", "2"])})
    assert chat(mgr, "crashy").status_code == 200
    r = chat(mgr, "crashy")
    assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
    info = mgr.wait_state("crashy", "failed", timeout=5)
    assert "exited unexpectedly with code 3" in info["last_error"]
    assert chat(mgr, "crashy").status_code == 200  # restarted on the next request
    assert mgr.launches("crashy") == 2 and mgr.models()["crashy"]["restarts"] == 1


def test_hang_is_504(make_mgr):
    mgr = make_mgr({"hung": fake_model("Chat", args=["--hang"], request_timeout=1)})
    r = chat(mgr, "hung")
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"


def test_failed_start_is_503_with_last_log_lines_and_backs_off(make_mgr):
    mgr = make_mgr({"broken": fake_model("Chat", args=["--fail-start"])})
    r = chat(mgr, "broken")
    assert r.status_code == 503
    msg = r.json()["error"]["message"]
    assert "exited with code 1 while starting" in msg and "failed to load model" in msg
    chat(mgr, "broken")  # second failure in a row
    r = chat(mgr, "broken")
    assert r.status_code == 503 and "retrying in" in r.json()["error"]["message"] and "Retry-After" in r.headers


def test_start_timeout_kills_and_reports(make_mgr):
    mgr = make_mgr({"sluggish": fake_model("Chat", args=["--load-delay", "30"], start_timeout=1)})
    r = chat(mgr, "sluggish")
    assert r.status_code == 503 and "did not become healthy within 1 s" in r.json()["error"]["message"]
    assert mgr.models()["sluggish"]["pid"] is None


def test_port_held_by_a_stranger_is_an_error(make_mgr):
    stranger = socket.socket()
    stranger.bind(("127.0.0.1", 0))
    stranger.listen()
    block = fake_model("Chat")
    block["port"] = stranger.getsockname()[1]
    try:
        mgr = make_mgr({"squatted": block})
        r = chat(mgr, "squatted")
        assert r.status_code == 503 and "already in use" in r.json()["error"]["message"]
        assert mgr.launches("squatted") == 0
    finally:
        stranger.close()


def test_windows_bat_on_posix_is_a_clear_error(make_mgr):
    mgr = make_mgr({"winmodel": {"mode": "Chat", "port": free_port(),
                                 "RTX4060": {"required_devices": [], "bat_path": "scripts\\start.bat"}}})
    r = chat(mgr, "winmodel")
    assert r.status_code == 503 and "Windows batch file" in r.json()["error"]["message"]


def _script_model(tmp_path, name: str) -> dict:
    """A bat_path .sh launch script that does NOT exec: the backend is a grandchild of the manager."""
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\n{sys.executable} -m llm_manager.testing.fake_backend --port $PORT --model {name}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"mode": "Chat", "port": free_port(), "default": {"required_devices": [], "bat_path": str(script)}}


def _backend_pids(mgr: ManagerProcess, model: str) -> list[int]:
    """The launched pid and every process in its group (the script's children included)."""
    pgid = mgr.models()[model]["pid"]
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    out.append(int(entry))
            except ProcessLookupError:
                continue
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_no_orphans_after_the_manager_dies(make_mgr, tmp_path, sig):
    mgr = make_mgr({"exec-model": fake_model("Chat"), "script-model": _script_model(tmp_path, "script-model")})
    assert chat(mgr, "exec-model").status_code == 200
    assert chat(mgr, "script-model").status_code == 200
    pids = _backend_pids(mgr, "exec-model") + _backend_pids(mgr, "script-model")
    assert len(pids) >= 3  # exec'd backend, the shell, and the shell's backend child
    mgr.proc.send_signal(sig)
    wait_until(lambda: not pids_alive(pids), timeout=5, interval=0.05)
    assert pids_alive(pids) == [], f"left running after {sig.name}: {pids_alive(pids)}"


def test_stop_kills_grandchildren_too(make_mgr, tmp_path):
    mgr = make_mgr({"script-model": _script_model(tmp_path, "script-model")})
    assert chat(mgr, "script-model").status_code == 200
    pids = _backend_pids(mgr, "script-model")
    assert mgr.http.post("/api/models/script-model/stop").json()["state"] == "stopped"
    assert pids_alive(pids) == []


def test_pid_file_reaps_leftovers_when_the_guardian_died_too(make_mgr, tmp_path):
    import psutil

    doc_models = {"script-model": _script_model(tmp_path, "script-model")}
    mgr = make_mgr(doc_models)
    assert chat(mgr, "script-model").status_code == 200
    shell = mgr.models()["script-model"]["pid"]  # the launched shell, leader of the group
    pids = _backend_pids(mgr, "script-model")
    guardian = next(p for p in psutil.Process(mgr.proc.pid).children() if "llm_manager.runtime.reaper" in " ".join(p.cmdline()))
    guardian.kill()
    # it stays a zombie of the manager; dead is enough
    assert wait_until(lambda: not pids_alive([guardian.pid]), timeout=5), "the guardian outlived SIGKILL"
    mgr.proc.kill()  # manager and guardian both gone: the shell's child survives PDEATHSIG
    mgr.proc.wait(5)
    assert wait_until(lambda: not pids_alive([shell]), timeout=5), "PDEATHSIG did not kill the launched shell"
    assert pids_alive(pids), "expected a leftover grandchild for this test to mean anything"
    again = ManagerProcess(mgr.tmp, json_doc(mgr))  # same data dir: reaps at start
    try:
        wait_until(lambda: not pids_alive(pids), timeout=5, interval=0.05)
        assert pids_alive(pids) == []
    finally:
        again.stop()


def json_doc(mgr: ManagerProcess) -> dict:
    import json

    return json.loads(mgr.config_path.read_text())


def test_missing_launch_program_is_a_clear_503(make_mgr):
    mgr = make_mgr({"ghost": {"mode": "Chat", "port": free_port(), "command": ["/nonexistent/llama-server", "-m", "x"],
                              "default": {"required_devices": [], "memory_mb": {}}}})
    r = chat(mgr, "ghost")
    assert r.status_code == 503
    msg = r.json()["error"]["message"]
    assert "/nonexistent/llama-server" in msg and ("No such file" in msg or "not found" in msg)
