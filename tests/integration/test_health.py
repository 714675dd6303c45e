"""/api/health: ``ok``, or ``degraded`` with reasons a monitor can read, always with status 200.

The usage store is broken for real from outside the manager (its table renamed away in the SQLite file, as
a damaged or full database fails every insert) and then repaired; plugins are broken by broken files; a model
crash-loops for real. Devices go offline through the simulated GPU's switch.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from helpers import ManagerProcess, config_doc, fake_model

from llm_manager.config.parse import parse_config
from llm_manager.runtime.manager import Manager

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def health_until(mgr: ManagerProcess, done: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
    """Poll /api/health until ``done(answer)``; every answer must be a 200."""
    deadline = time.monotonic() + timeout
    while True:
        r = mgr.http.get("/api/health")
        assert r.status_code == 200
        if done(r.json()) or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.05)


def rename_table(db: Path, old: str, new: str) -> None:
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
    conn.close()


def test_a_failing_usage_store_makes_health_degraded_until_it_recovers(tmp_path: Path) -> None:
    mgr = ManagerProcess(tmp_path, config_doc({"m": fake_model("Chat")}, flush_interval=0.05))
    try:
        first = mgr.http.get("/api/health").json()
        assert (first["status"], first["reasons"], first["usage_store"]["failing"]) == ("ok", [], False)
        db = mgr.data_dir / "usage.db"
        rename_table(db, "request_log", "request_log_away")  # every insert of a request row now fails
        assert httpx.post(mgr.url + "/v1/chat/completions", json={"model": "m", **CHAT}, timeout=30).status_code == 200

        sick = health_until(mgr, lambda h: h["status"] != "ok")
        assert sick["status"] == "degraded"
        assert sick["usage_store"]["failing"] and sick["usage_store"]["pending"] >= 1
        (reason,) = sick["reasons"]
        assert reason.startswith("usage store: ") and "no such table: request_log" in reason
        assert "INSERT" not in reason  # the driver's message, not the SQL with its rows

        rename_table(db, "request_log_away", "request_log")
        well = health_until(mgr, lambda h: h["status"] == "ok")
        assert (well["status"], well["reasons"], well["usage_store"]["failing"]) == ("ok", [], False)
        assert well["usage_store"]["pending"] == 0 and well["usage_store"]["last_success_at"]
        with sqlite3.connect(db) as conn:  # the row kept in memory meanwhile was written after all
            assert conn.execute("SELECT count(*) FROM request_log WHERE model = 'm'").fetchone()[0] == 1
        conn.close()
    finally:
        mgr.stop()


def test_plugin_errors_and_a_crash_looping_model_make_health_degraded(tmp_path: Path) -> None:
    for kind in ("devices", "interfaces"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "broken.py").write_text(f"raise RuntimeError('{kind} driver missing')\n")
    doc = config_doc({"crashy": fake_model("Chat", args=["--fail-start"])},
                     device_plugin_dir=str(tmp_path / "devices"), interface_plugin_dir=str(tmp_path / "interfaces"))
    mgr = ManagerProcess(tmp_path, doc)
    try:
        h = mgr.http.get("/api/health").json()
        assert h["status"] == "degraded" and len(h["reasons"]) == 2
        assert any(r.startswith("device plugin ") and "devices driver missing" in r for r in h["reasons"])
        assert any(r.startswith("interface plugin ") and "interfaces driver missing" in r for r in h["reasons"])

        for _ in range(2):  # the second failure in a row starts a back-off
            assert mgr.http.post("/api/models/crashy/start", params={"wait": "1"}).status_code >= 500
        h = mgr.http.get("/api/health").json()
        assert h["status"] == "degraded" and len(h["reasons"]) == 3
        assert any(r.startswith("model crashy in crash back-off: 2 failures in a row") for r in h["reasons"])
    finally:
        mgr.stop()


async def test_an_offline_device_makes_health_degraded(tmp_path: Path) -> None:
    doc = config_doc({}, gpus={"gpu": 8000}, Disable_GPU_monitoring=True)
    manager = Manager(parse_config(doc, tmp_path), data_dir=tmp_path / "data")
    await manager.start()
    try:
        assert manager.health()["status"] == "ok"
        sim = next(d for d in manager.devices.instances if d.device_name == "gpu")
        sim.set_online(False, "fell off the bus")
        await manager.sample_devices()
        h = manager.health()
        assert (h["status"], h["reasons"]) == ("degraded", ["device gpu offline: fell off the bus"])
        assert "usage_store" not in h  # the runtime knows no store: Service.health adds its state
        sim.set_online(True)
        await manager.sample_devices()
        assert manager.health()["status"] == "ok"
    finally:
        await manager.shutdown()
