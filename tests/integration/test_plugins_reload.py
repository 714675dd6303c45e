"""Plugins found in folders (seed-style), reported when broken, and reloaded with the config, no restart."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import ManagerProcess, config_doc, fake_model, free_port, wait_until

CUSTOM_MODE = '''
from plugins.interfaces.Base_Class import InterfacePlugin


class CustomModeInterface(InterfacePlugin):
    def __init__(self, model_manager=None):
        super().__init__("CustomMode", model_manager)

    def get_supported_endpoints(self):
        return {"v1/custom/completions"}

    def validate_request(self, path, model_alias):
        if "v1/custom/completions" not in path:
            return False, f"model {model_alias} only serves /v1/custom/completions"
        return True, ""
'''

CUSTOM_SERVER = '''
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    def _send(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send({"status": "ok"})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._send({"path": self.path, "echo": body["input"], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''

SEED_STYLE_GPU = '''
from pathlib import Path
from plugins.devices.Base_Class import DevicePlugin

STATE = Path(__file__).with_name("gpu_state.json")


class CustomGPUDevice(DevicePlugin):
    def __init__(self):
        super().__init__("custom_gpu")

    def is_online(self):
        state = __import__("json").loads(STATE.read_text())
        self.offline_reason = "" if state["online"] else "unplugged"
        return state["online"]

    def get_devices_info(self):
        free = __import__("json").loads(STATE.read_text())["free"]
        return {"device_type": "GPU", "memory_type": "VRAM", "total_memory_mb": 8000,
                "available_memory_mb": free, "used_memory_mb": 8000 - free,
                "usage_percentage": 10.0, "temperature_celsius": 40.0}
'''


def wait_for(fn, timeout=8.0):
    value = wait_until(fn, timeout, 0.1)
    assert value, "condition not met in time"
    return value


@pytest.fixture
def setup(tmp_path):
    dev_dir, if_dir = tmp_path / "devices", tmp_path / "interfaces"
    dev_dir.mkdir()
    if_dir.mkdir()
    (if_dir / "custom_mode.py").write_text(CUSTOM_MODE)
    (if_dir / "broken.py").write_text("this is not python(\n")
    (if_dir / "empty.py").write_text("X = 1\n")
    (dev_dir / "gpu_state.json").write_text(json.dumps({"online": True, "free": 7000}))
    (dev_dir / "custom_gpu.py").write_text(SEED_STYLE_GPU)
    (tmp_path / "server.py").write_text(CUSTOM_SERVER)
    doc = config_doc({
        "custom": {"mode": "CustomMode", "port": free_port(), "command": [sys.executable, str(tmp_path / "server.py")],
                   "default": {"required_devices": [], "memory_mb": {}}},
        "on-custom-gpu": fake_model("Chat", memory={"custom_gpu": 4000}),
        "doomed": fake_model("Chat"),
    }, device_plugin_dir=str(dev_dir), interface_plugin_dir=str(if_dir))
    (tmp_path / "run").mkdir()
    m = ManagerProcess(tmp_path / "run", doc)
    yield m, tmp_path, doc
    m.stop()


def test_custom_mode_from_a_dropped_in_file_works_end_to_end(setup):
    mgr, _tmp, _doc = setup
    r = mgr.http.post("/v1/custom/completions", json={"model": "custom", "input": "ping"})
    assert r.status_code == 200 and r.json() == {"path": "/v1/custom/completions", "echo": "ping",
                                                   "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    r = mgr.http.post("/v1/chat/completions", json={"model": "custom", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and "only serves /v1/custom/completions" in r.json()["error"]["message"]
    recent = mgr.http.get("/api/usage/recent", params={"limit": 1}).json()["requests"][0]
    assert recent["endpoint"] == "custom/completions" and recent["prompt_tokens"] == 3


def test_broken_plugins_are_reported_and_the_rest_work(setup):
    mgr, _tmp, _doc = setup
    plugins = mgr.http.get("/api/plugins").json()
    reasons = {e["file"].rsplit("/", 1)[-1]: e["reason"] for e in plugins["errors"]}
    assert "import failed: SyntaxError" in reasons["broken.py"]
    assert "no concrete subclass of InterfacePlugin" in reasons["empty.py"]
    assert {"Chat", "Base", "Embedding", "Reranker", "CustomMode"} <= set(plugins["interfaces"])
    assert "custom_gpu" in [d["name"] for d in plugins["devices"]]


def test_seed_style_device_plugin_feeds_placement_and_goes_offline(setup):
    mgr, tmp, _doc = setup
    state = tmp / "devices" / "gpu_state.json"
    assert mgr.http.post("/v1/chat/completions", json={"model": "on-custom-gpu", "messages": [
        {"role": "user", "content": "x"}], "max_tokens": 1}).status_code == 200
    state.write_text(json.dumps({"online": True, "free": 1000}))  # someone else took the memory
    plan = mgr.http.get("/api/plan/on-custom-gpu").json()
    assert plan["running"] == "ready" and plan["devices"][0]["free_before_mb"] == 5000  # 1000 free + its own 4000
    state.write_text(json.dumps({"online": False, "free": 7000}))
    info = wait_for(lambda: mgr.models()["on-custom-gpu"].get("devices_offline"))
    assert info == ["custom_gpu"]
    mgr.http.post("/api/models/on-custom-gpu/stop")
    plan = mgr.http.get("/api/plan/on-custom-gpu").json()
    assert not plan["fits"] and "custom_gpu offline (unplugged)" in plan["reason"]


def test_plugin_files_hot_reload(setup):
    mgr, tmp, _doc = setup
    (tmp / "interfaces" / "broken.py").write_text(CUSTOM_MODE.replace("CustomMode", "Fixed").replace(
        "CustomModeInterface", "FixedInterface"))
    plugins = wait_for(lambda: (p := mgr.http.get("/api/plugins").json()) and "Fixed" in p["interfaces"] and p)
    assert not any(e["file"].endswith("broken.py") for e in plugins["errors"])
    (tmp / "interfaces" / "broken.py").unlink()
    wait_for(lambda: "Fixed" not in mgr.http.get("/api/plugins").json()["interfaces"])


def test_config_file_edit_reloads_without_restart(setup):
    mgr, _tmp, doc = setup
    pid_before = mgr.proc.pid
    assert mgr.http.post("/v1/chat/completions", json={"model": "doomed", "messages": [
        {"role": "user", "content": "x"}], "max_tokens": 1}).status_code == 200
    new = json.loads(json.dumps(doc))
    del new["doomed"]
    new["newcomer"] = fake_model("Embedding", aliases=["nc"])
    mgr.config_path.write_text(json.dumps(new))
    wait_for(lambda: "newcomer" in mgr.models() and "doomed" not in mgr.models())
    assert mgr.http.post("/v1/embeddings", json={"model": "nc", "input": "x"}).status_code == 200
    # an invalid edit is rejected and the running config stays
    bad = json.loads(json.dumps(new))
    bad["newcomer"]["port"] = "nope"
    mgr.config_path.write_text(json.dumps(bad))
    events = wait_for(lambda: [e for e in mgr.http.get("/api/events").json()["events"] if e["kind"] == "config_error"])
    assert "models.newcomer.port: expected integer" in events[-1]["detail"]
    assert "newcomer" in mgr.models() and mgr.proc.pid == pid_before and mgr.proc.poll() is None


def test_put_config_validates_then_applies_and_restarts_changed_models_when_idle(setup):
    mgr, _tmp, doc = setup
    assert mgr.http.post("/v1/chat/completions", json={"model": "doomed", "messages": [
        {"role": "user", "content": "x"}], "max_tokens": 1}).status_code == 200
    bad = json.loads(json.dumps(doc))
    bad["doomed"]["gpu"]["memory_mb"] = {"nope": 1}
    r = mgr.http.put("/api/config", json=bad)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("models.doomed.gpu.memory_mb.nope:")
    changed = json.loads(json.dumps(doc))
    changed["doomed"]["command"] = changed["doomed"]["command"] + ["--max-tokens-default", "3"]
    r = mgr.http.put("/api/config", json=changed)
    assert r.status_code == 200 and r.json()["changed"] == ["doomed"]
    mgr.wait_state("doomed", "stopped", timeout=5)  # idle: restarted lazily with the new command
    r = mgr.http.post("/v1/chat/completions", json={"model": "doomed", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200, (r.status_code, r.text, mgr.models()["doomed"])
    assert r.json()["usage"]["completion_tokens"] == 3
    assert mgr.launches("doomed") == 2
    assert json.loads(mgr.config_path.read_text())["doomed"]["command"][-1] == "3"  # written back to the file
