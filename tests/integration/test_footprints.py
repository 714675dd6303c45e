"""Learned memory footprints (issue 19): after a model is ready, what it really holds on each device is measured
(per process, matched by process group; simulated GPUs get it from the fake backend's ``--footprint-mb``), shown
next to the declared MB, warned about when over by more than 10 %, used by placement and remembered across a
restart."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.helpers import ManagerProcess, config_doc, fake_model, wait_until


def ask(mgr: ManagerProcess, model: str) -> None:
    r = mgr.http.post("/v1/chat/completions", timeout=120, json={
        "model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text


def events(mgr: ManagerProcess) -> list[dict[str, Any]]:
    return mgr.http.get("/api/events").json()["events"]


def gpu(mgr: ManagerProcess) -> dict[str, Any]:
    return next(d for d in mgr.http.get("/api/devices", params={"fresh": 1}).json()["devices"] if d["name"] == "gpu")


def doc() -> dict[str, Any]:
    # both fit by declaration (4000 + 4000 of 10000); "big" really holds 7000, so by measurement they do not
    return config_doc({"big": fake_model(memory={"gpu": 4000}, args=["--footprint-mb", "7000"]),
                       "small": fake_model(memory={"gpu": 4000})}, {"gpu": 10000}, min_residency=0)


def test_a_footprint_larger_than_declared_is_learned_and_changes_placement(tmp_path: Path) -> None:
    mgr = ManagerProcess(tmp_path, doc())
    try:
        assert mgr.models()["big"]["memory_measured_mb"] is None  # nothing learned yet
        ask(mgr, "big")
        assert wait_until(lambda: mgr.models()["big"]["memory_measured_mb"] == {"gpu": 7000}, 20)
        info = mgr.models()["big"]
        assert info["memory_declared_mb"] == {"gpu": 4000} and info["memory_profile"] == "gpu"
        assert gpu(mgr)["used_memory_mb"] == 7000  # the simulated GPU reports what the process holds
        warn = [e for e in events(mgr) if e["kind"] == "footprint" and e["model"] == "big"]
        assert warn and warn[-1]["over"] and warn[-1]["memory"] == {"gpu": 7000} and "+75 %" in warn[-1]["detail"]
        mgr.http.post("/api/models/big/stop", json={}).raise_for_status()

        ask(mgr, "small")  # 4000 of 10000
        plan = mgr.http.get("/api/plan/big").json()
        assert plan["memory_declared_mb"] == {"gpu": 4000} and plan["memory_measured_mb"] == {"gpu": 7000}
        assert plan["devices"][0]["needed_mb"] == 7000 and plan["evict"] == ["small"]
        ask(mgr, "big")  # by declaration it would fit beside small; by measurement small must go
        assert mgr.models()["small"]["state"] == "stopped"
        assert ("evict", "small") in [(e["kind"], e["model"]) for e in events(mgr)]
        assert gpu(mgr)["used_memory_mb"] == 7000  # never overcommitted (7000 + 4000 > 10000)
    finally:
        mgr.stop()
    with sqlite3.connect(tmp_path / "data" / "usage.db") as db:  # the event is in the history too, with its MB
        stored = db.execute("SELECT holdings FROM model_event WHERE kind = 'footprint' AND model = 'big'").fetchall()
    assert stored and json.loads(stored[-1][0]) == {"gpu": 7000.0}

    again = ManagerProcess(tmp_path, doc())  # the same data dir: the learned footprint is remembered
    try:
        assert again.models()["big"]["memory_measured_mb"] == {"gpu": 7000}
        ask(again, "small")
        plan = again.http.get("/api/plan/big").json()
        assert plan["evict"] == ["small"] and plan["devices"][0]["needed_mb"] == 7000
    finally:
        again.stop()


def test_a_model_that_holds_what_it_declares_raises_no_warning(tmp_path: Path) -> None:
    mgr = ManagerProcess(tmp_path, config_doc({"m": fake_model(memory={"gpu": 4000}, args=["--footprint-mb", "4200"])},
                                              {"gpu": 10000}))
    try:
        ask(mgr, "m")
        assert wait_until(lambda: mgr.models()["m"]["memory_measured_mb"] == {"gpu": 4200}, 20)
        found = [e for e in events(mgr) if e["kind"] == "footprint"]
        assert found and not found[-1]["over"] and "measured" in found[-1]["detail"]
        assert mgr.http.get("/api/plan/m").json()["memory_measured_mb"] == {"gpu": 4200}
    finally:
        mgr.stop()
