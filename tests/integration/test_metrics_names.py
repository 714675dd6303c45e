"""/api/metrics follows Prometheus naming: base units (bytes, seconds), checked by name, value and by promtool."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
from helpers import ManagerProcess, config_doc, fake_model, wait_until
from prometheus_client.parser import text_string_to_metric_families

MIB = 1024 * 1024
GPU_MB = 8000
MODEL_MB = 3000


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory) -> tuple[str, dict]:
    """A real /api/metrics answer after streamed and plain requests, so every family has samples."""
    doc = config_doc({"chat": fake_model("Chat", memory={"gpu0": MODEL_MB},
                                         pricing={"input": 1.0, "output": 2.0, "per": 1000})},
                     gpus={"gpu0": GPU_MB})
    m = ManagerProcess(tmp_path_factory.mktemp("metrics"), doc)
    try:
        body = {"model": "chat", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 4}
        for stream in (False, True, False):
            r = httpx.post(m.url + "/v1/chat/completions", json={**body, "stream": stream}, timeout=30)
            assert r.status_code == 200, r.text
        # metrics read the monitor's last sample: wait for one with the model
        wait_until(lambda: device(m)["used_memory_mb"] >= MODEL_MB, timeout=10, interval=0.1)
        text = m.http.get("/api/metrics").text
        return text, device(m)
    finally:
        m.stop()


def device(m: ManagerProcess) -> dict:
    return next(d for d in m.http.get("/api/devices").json()["devices"] if d["name"] == "gpu0")


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_family_has_samples_and_uses_base_units(metrics_text):
    text, _ = metrics_text
    fams = families(text)
    assert {"llm_device_memory_used_bytes", "llm_device_memory_total_bytes", "llm_request_duration_seconds",
            "llm_time_to_first_token_seconds", "llm_requests", "llm_tokens", "llm_cost"} <= set(fams)
    assert all(f.samples for f in fams.values()), [n for n, f in fams.items() if not f.samples]
    for name in fams:  # no abbreviated or scaled units anywhere
        assert not any(name.endswith(s) or f"{s}_" in name for s in ("_mb", "_ms", "_kb", "_gb", "_megabytes")), name
    assert fams["llm_requests"].type == "counter" and fams["llm_request_duration_seconds"].type == "histogram"


def test_device_memory_is_in_bytes(metrics_text):
    text, gpu = metrics_text
    fams = families(text)
    total = {s.labels["device"]: s.value for s in fams["llm_device_memory_total_bytes"].samples}
    used = {s.labels["device"]: s.value for s in fams["llm_device_memory_used_bytes"].samples}
    assert total["gpu0"] == GPU_MB * MIB == gpu["total_memory_mb"] * MIB
    assert used["gpu0"] == gpu["used_memory_mb"] * MIB
    assert used["gpu0"] >= MODEL_MB * MIB  # the loaded model's reservation shows, in bytes


def test_latency_is_in_seconds(metrics_text):
    fams = families(metrics_text[0])
    total = next(s.value for s in fams["llm_request_duration_seconds"].samples if s.name.endswith("_sum"))
    count = next(s.value for s in fams["llm_request_duration_seconds"].samples if s.name.endswith("_count"))
    assert count == 3 and 0 < total / count < 10  # seconds: a fake answer takes milliseconds, not thousands


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package: prometheus)")
def test_promtool_check_metrics_is_clean(metrics_text):
    proc = subprocess.run(["promtool", "check", "metrics"], input=metrics_text[0], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr
