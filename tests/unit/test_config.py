"""Config loading: the seed's format unchanged, additive extensions, and path-naming errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_manager.config.parse import load_config, parse_config
from llm_manager.errors import ConfigError

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_config.json"


def seed() -> dict:
    return json.loads(SEED.read_text())


def test_seed_config_loads_unchanged():
    cfg = load_config(SEED)
    assert list(cfg.models) == ["Qwen3-Coder-30B-A3B-Instruct-UD-64K", "Qwen3-Embedding-8B", "bge-reranker-v2-m3"]
    p = cfg.program
    assert (p.host, p.port, p.alive_time, p.log_level) == ("0.0.0.0", 8080, 60.0, "DEBUG")
    assert p.token_tracker == ("Chat", "Base", "Embedding", "Reranker")
    coder = cfg.models["Qwen3-Coder-30B-A3B-Instruct-UD-64K"]
    assert coder.mode == "Chat" and coder.port == 10001 and coder.auto_start is False
    assert coder.aliases == ("Qwen3-Coder-30B-A3B-Instruct-64K", "Qwen3-Coder-30B-A3B-Instruct")
    assert [pr.name for pr in coder.profiles] == ["RTX4060-V100", "RTX4060"]  # priority order kept
    assert coder.profiles[0].required_devices == ("rtx 4060", "v100")
    assert dict(coder.profiles[0].memory_mb) == {"rtx 4060": 6144, "v100": 16000}
    assert coder.profiles[1].bat_path.endswith("Qwen3-Coder-30B-A3B-Instruct-64K-RTX4060.bat")
    assert cfg.models["bge-reranker-v2-m3"].profiles[0].memory_mb["rtx 4060"] == 768
    # alive_time is idle minutes in the original code; the model ttl falls back to it in seconds
    assert cfg.idle_ttl(coder) == 3600.0
    assert cfg.warnings == ()


@pytest.mark.parametrize("mutate, path, expected", [
    (lambda d: d["Qwen3-Embedding-8B"]["RTX4060"]["memory_mb"].update({"rtx 4060": "6500"}),
     "models.Qwen3-Embedding-8B.RTX4060.memory_mb.rtx 4060", "expected integer"),
    (lambda d: d["Qwen3-Embedding-8B"].update({"port": "10012"}), "models.Qwen3-Embedding-8B.port", "expected integer"),
    (lambda d: d["Qwen3-Embedding-8B"].update({"mode": "Chatt"}), "models.Qwen3-Embedding-8B.mode", "expected one of"),
    (lambda d: d["Qwen3-Embedding-8B"].pop("mode"), "models.Qwen3-Embedding-8B.mode", "required"),
    (lambda d: d["program"].update({"port": 70000}), "program.port", "expected integer <= 65535"),
    (lambda d: d["program"].update({"alive_time": "60"}), "program.alive_time", "expected number"),
    (lambda d: d["bge-reranker-v2-m3"].update({"aliases": "x"}), "models.bge-reranker-v2-m3.aliases", "expected list"),
    (lambda d: d["bge-reranker-v2-m3"]["RTX4060"]["memory_mb"].update({"v100": 5}),
     "models.bge-reranker-v2-m3.RTX4060.memory_mb.v100", "expected one of required_devices"),
    (lambda d: d["bge-reranker-v2-m3"]["RTX4060"].pop("bat_path"), "models.bge-reranker-v2-m3.RTX4060",
     "expected bat_path or command"),
    (lambda d: d["bge-reranker-v2-m3"].update({"port": 10012}), "models.bge-reranker-v2-m3.port", "already used"),
    (lambda d: d["bge-reranker-v2-m3"].update({"aliases": ["Qwen3-Embedding-8B"]}),
     "models.bge-reranker-v2-m3.aliases", "already used by model Qwen3-Embedding-8B"),
    (lambda d: d["program"].update({"simulated_devices": [{"name": "g"}]}),
     "program.simulated_devices[0].total_memory_mb", "expected integer"),
])
def test_errors_name_the_json_path(mutate, path, expected):
    doc = seed()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        parse_config(doc, SEED.parent)
    assert err.value.path == path
    assert expected in err.value.message
    assert err.value.message.startswith(path + ": ")


def test_extensions_are_additive():
    doc = seed()
    doc["program"]["simulated_devices"] = [{"name": "rtx 4060", "total_memory_mb": 8192}]
    doc["Qwen3-Embedding-8B"].update({"ttl": 30, "start_timeout": 12, "health_path": "/v1/models",
                                      "max_concurrency": 2, "env": {"A": "1"}, "cwd": "/tmp",
                                      "command": ["serve", "--port", "${PORT}"]})
    doc["cpu-only"] = {"mode": "Base", "port": 10020, "command": ["run-it"]}
    cfg = parse_config(doc, SEED.parent)
    emb = cfg.models["Qwen3-Embedding-8B"]
    assert (emb.ttl, emb.start_timeout, emb.health_path, emb.max_concurrency) == (30.0, 12.0, "/v1/models", 2)
    assert emb.profiles[0].env == {"A": "1"} and emb.profiles[0].cwd == "/tmp"
    assert emb.profiles[0].bat_path  # the profile's own bat_path wins over the model-level command
    assert cfg.idle_ttl(emb) == 30.0
    cpu = cfg.models["cpu-only"]
    assert cpu.profiles[0].name == "default" and cpu.profiles[0].command == ("run-it",)
    assert cfg.program.simulated_devices[0].total_memory_mb == 8192


def test_unknown_keys_warn_not_fail():
    doc = seed()
    doc["Qwen3-Embedding-8B"]["auto_strat"] = True
    cfg = parse_config(doc, SEED.parent)
    assert any("auto_strat" in w for w in cfg.warnings)


def test_invalid_json_names_line(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{"program": {"port": 1,}}')
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_config(bad)


def test_config_example_is_valid():
    from llm_manager.config.files import read_config

    cfg = read_config(Path(__file__).resolve().parents[2] / "config.example.json")
    assert cfg.models["Qwen3-Embedding-8B"].profiles[0].command[0] == "llama-server"
    assert cfg.warnings == ()
