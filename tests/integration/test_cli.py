"""The CLI against real managers and as the installed command: plan asks its config's manager, readable output,
the first-key warning, check-config and plan without a manager (in a fresh process each, as a user runs them)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import ROOT, ManagerProcess, config_doc, fake_model, free_port

from llm_manager.cli import main

GPUS = {"gpu0": 8000}
SEED = ROOT / "tests" / "fixtures" / "seed_config.json"


def seed() -> dict:
    return json.loads(SEED.read_text())


def models_doc() -> dict:
    return config_doc({"big": fake_model("Chat", memory={"gpu0": 6000}),
                       "small": fake_model("Chat", memory={"gpu0": 4000})}, gpus=GPUS)


def write_config(tmp: Path, doc: dict, port: int) -> Path:
    """The same config, with program.port set to where its manager listens (as a user's config.json says)."""
    path = tmp / f"config-{port}.json"
    path.write_text(json.dumps({**doc, "program": {**doc["program"], "port": port}}))
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    m = ManagerProcess(tmp_path_factory.mktemp("cli"), models_doc())
    yield m
    m.stop()


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """Another manager, without the models of ``plain``, that $LLM_MANAGER_URL points at in some tests."""
    m = ManagerProcess(tmp_path_factory.mktemp("cli-other"), config_doc({"chat": fake_model("Chat")}))
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def no_env_url(monkeypatch):
    monkeypatch.delenv("LLM_MANAGER_URL", raising=False)
    monkeypatch.delenv("LLM_MANAGER_ADMIN_KEY", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------- plan


def test_plan_asks_the_manager_of_its_config_not_the_one_of_the_environment(plain, other, tmp_path, capsys,
                                                                             monkeypatch):
    assert run(capsys, "start", "big", "--url", plain.url)[0] == 0
    monkeypatch.setenv("LLM_MANAGER_URL", other.url)  # a different manager, that has no model "small"
    rc, out, _ = run(capsys, "plan", "small", "--config", str(write_config(tmp_path, models_doc(), plain.port)))
    assert rc == 0, out
    assert f"running manager at http://127.0.0.1:{plain.port}" in out
    assert "evict: big" in out  # the live state: only that manager has "big" loaded
    rc, _, err = run(capsys, "plan", "small")  # no --config: $LLM_MANAGER_URL is asked, and it has no "small"
    assert rc == 1 and "not found" in err
    assert run(capsys, "stop", "big", "--url", plain.url)[0] == 0


def test_plan_falls_back_to_the_config_when_no_manager_answers(tmp_path, capsys):
    port = free_port()  # nothing listens here
    rc, out, _ = run(capsys, "plan", "small", "--config", str(write_config(tmp_path, models_doc(), port)))
    assert rc == 0, out
    assert f"config only: no manager answering at http://127.0.0.1:{port}" in out
    assert "profile: gpu" in out and "evict: -" in out


def test_plan_with_an_invalid_named_config_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"program": {"port": "eighty"}}))
    rc, _, err = run(capsys, "plan", "small", "--config", str(path))
    assert rc == 2 and "invalid config: program.port" in err


# ---------------------------------------------------------------- output and help


def test_start_and_stop_print_one_line_and_json_on_request(plain, capsys):
    rc, out, _ = run(capsys, "start", "small", "--url", plain.url)
    info = plain.models()["small"]
    assert rc == 0 and out.strip() == f"small: ready (profile gpu, pid {info['pid']}, port {info['port']})"
    rc, out, _ = run(capsys, "models", "--url", plain.url)
    header, *rows = out.strip().splitlines()
    assert header.split() == ["MODEL", "MODE", "STATE", "PROFILE", "PORT", "PID", "IN_FLIGHT", "QUEUED"]
    assert {r.split()[0]: r.split()[2] for r in rows} == {"big": "stopped", "small": "ready"}
    rc, out, _ = run(capsys, "stop", "small", "--url", plain.url, "--json")
    assert rc == 0 and json.loads(out)["state"] == "stopped"
    rc, out, _ = run(capsys, "stop", "small", "--url", plain.url)
    assert out.strip() == "small: stopped"


def test_help_names_only_the_options_each_command_uses(capsys):
    for cmd in ("models", "start", "stop"):
        text = help_text(capsys, cmd)
        assert "--config" not in text, cmd
        assert "LLM_MANAGER_URL" in " ".join(text.split()) and "http://127.0.0.1:8080" in text, cmd
    plan = " ".join(help_text(capsys, "plan").split())
    assert "--config" in plan and "the host and port of --config" in plan
    check = " ".join(help_text(capsys, "check-config").split())
    assert "Validate a config file" in check and "Needs no running manager" in check


def test_the_installed_command_runs_as_llm_manager():
    proc = subprocess.run([sys.executable, "-m", "llm_manager.cli", "stop", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: llm-manager stop")


# ---------------------------------------------------------------- keys


def test_the_first_key_warns_that_v1_now_needs_one(tmp_path, capsys):
    m = ManagerProcess(tmp_path, config_doc({"chat": fake_model("Chat")}))
    try:
        ask = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        assert httpx.post(m.url + "/v1/chat/completions", json=ask, timeout=30).status_code == 200  # open
        rc, out, err = run(capsys, "keys", "create", "ci", "--url", m.url)
        assert rc == 0 and out.splitlines()[-1].startswith("sk-")
        assert err.startswith("warning: this is the first API key") and "401" in err
        assert out.splitlines()[-1] not in err  # the secret is shown once, on stdout only
        assert httpx.post(m.url + "/v1/chat/completions", json=ask, timeout=30).status_code == 401  # as it warned
        second = m.http.post("/api/keys", json={"name": "second"})
        assert second.status_code == 201 and "warning" not in second.json()  # already closed: nothing changes
        rc, _, err = run(capsys, "keys", "create", "third", "--url", m.url)
        assert rc == 0 and err == ""
    finally:
        m.stop()


def test_fake_backend_help_names_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["fake-backend", "--help"])
    assert capsys.readouterr().out.startswith("usage: llm-manager fake-backend")


# ---------------------------------------------------------------- check-config and plan in a fresh process


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_manager.cli", *args], capture_output=True, text=True, timeout=60)


def test_check_config_cli_lists_models_and_choice(tmp_path):
    doc = copy.deepcopy(seed())
    doc["program"]["simulated_devices"] = [{"name": "NVIDIA GeForce RTX 4060", "total_memory_mb": 8188}]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    r = _cli("check-config", str(path))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Qwen3-Coder-30B-A3B-Instruct-UD-64K  [Chat]  port 10001" in out
    assert "aliases: Qwen3-Coder-30B-A3B-Instruct-64K, Qwen3-Coder-30B-A3B-Instruct" in out
    assert "profile RTX4060-V100: rtx 4060: 6144 MB, v100: 16000 MB" in out
    # no V100 present: the second profile is the one that would be chosen
    assert "would choose now: RTX4060 (profile RTX4060 fits)" in out
    assert "bge-reranker-v2-m3  [Reranker]" in out


def test_check_config_cli_bad_config_exits_2_with_one_message(tmp_path):
    doc = seed()
    doc["Qwen3-Embedding-8B"]["RTX4060"]["memory_mb"]["rtx 4060"] = "lots"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    r = _cli("check-config", str(path))
    assert r.returncode == 2
    assert r.stderr.strip() == ("invalid config: models.Qwen3-Embedding-8B.RTX4060.memory_mb.rtx 4060: "
                                "expected integer")
    r = _cli("serve", "--config", str(path), "--port", "0")
    assert r.returncode == 2 and "memory_mb.rtx 4060: expected integer" in r.stderr
    assert "Traceback" not in r.stderr


def test_plan_cli_without_a_running_manager(tmp_path):
    doc = seed()
    doc["program"]["simulated_devices"] = [{"name": "NVIDIA GeForce RTX 4060", "total_memory_mb": 6000}]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    r = _cli("plan", "Qwen3-Embedding-8B", "--config", str(path), "--url", "http://127.0.0.1:9")
    assert r.returncode == 3  # does not fit: 6500 MB needed, 6000 MB on the card
    assert "config only: no manager answering at http://127.0.0.1:9" in r.stdout and "needs   6500 MB" in r.stdout
    r = _cli("plan", "bge-reranker-v2-m3", "--config", str(path), "--url", "http://127.0.0.1:9")
    assert r.returncode == 0 and "profile: RTX4060" in r.stdout
