"""Cold-start phases (issue 19): spawn -> port open -> healthy -> first byte, in the model's events and as
Prometheus histograms, so a user sees where a slow start goes."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import ManagerProcess, config_doc, fake_model, wait_until


def test_a_cold_start_is_reported_phase_by_phase(tmp_path: Path) -> None:
    # the backend opens its port at once but answers 503 "Loading model" for 1.5 s: the healthy phase holds it
    mgr = ManagerProcess(tmp_path, config_doc({"slow": fake_model(args=["--load-delay", "1.5"])}))
    try:
        r = mgr.http.post("/v1/chat/completions", json={"model": "slow", "max_tokens": 3,
                                                         "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200

        def reported() -> dict | None:
            return next((e for e in mgr.http.get("/api/events").json()["events"] if e["kind"] == "cold-start"), None)

        cold = wait_until(reported, 10)
        assert cold, "no cold-start event"
        phases = cold["phases"]
        assert list(phases) == ["spawn", "port", "healthy", "first_byte"]
        assert phases["healthy"] >= 1.0  # the loading time is where this start went
        assert all(v >= 0 for v in phases.values()) and phases["first_byte"] < 5
        ready = next(e for e in mgr.http.get("/api/events").json()["events"] if e["kind"] == "ready")
        assert "healthy" in ready["detail"] and "port" in ready["detail"]
        metrics = mgr.http.get("/api/metrics").text
        for phase in ("spawn", "port", "healthy", "first_byte"):
            assert f'llm_cold_start_phase_seconds_count{{model="slow",phase="{phase}"}} 1.0' in metrics
        # a warm request adds nothing
        assert mgr.http.post("/v1/chat/completions", json={"model": "slow", "max_tokens": 2, "messages": [
            {"role": "user", "content": "again"}]}).status_code == 200
        assert 'llm_cold_start_phase_seconds_count{model="slow",phase="first_byte"} 1.0' in mgr.http.get(
            "/api/metrics").text
        rows = mgr.http.get("/api/usage/recent").json()["requests"]
        assert rows[-1]["start_ms"] > 1000 or rows[0]["start_ms"] > 1000
    finally:
        mgr.stop()


def test_metrics_stay_valid_for_promtool(tmp_path: Path) -> None:
    """The new series are well-formed (the metrics names test runs promtool on a full scrape)."""
    mgr = ManagerProcess(tmp_path, config_doc({"m": fake_model()}))
    try:
        text = httpx.get(mgr.url + "/api/metrics", timeout=10).text
        assert "# TYPE llm_cold_start_phase_seconds histogram" in text
        assert "# TYPE llm_instance_ready gauge" in text
    finally:
        mgr.stop()
