"""One typed config: keys, budgets, rate limits and pricing come out of parse_config typed, and parse once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llm_manager.config.files as loading
import llm_manager.config.parse as config_module
from llm_manager.accounting.layer import Pricer
from llm_manager.accounting.pricing import PriceBook, VolumeTier
from llm_manager.accounting.security import Budget, KeyInfo, Security
from llm_manager.config.blocks import BudgetSpec, ConfigKey, RateLimits, hash_key
from llm_manager.config.files import read_config, read_document
from llm_manager.config.parse import ProgramConfig, parse_config
from llm_manager.errors import ConfigError

PRICING = {"input": 1.0, "output": 2.0, "per": 1000, "volume_tiers": [{"above_tokens": 10, "input": 0.5}]}


def document(**program: Any) -> dict[str, Any]:
    """A config with every typed block: keys, budgets, rate limits and a priced model."""
    return {
        "program": {
            "api_keys": ["sk-a", {"key": "sk-b", "name": "b", "models": ["m"], "rpm": 6, "tpm": 600}],
            "budgets": [{"name": "monthly", "limit": 50, "unit": "cost"},
                        {"name": "b daily", "scope": "key", "key": "b", "period": "day", "limit": 1000,
                         "unit": "tokens"}],
            "rate_limits": {"per_key": {"rpm": 600, "tpm": 100000}, "per_ip": {"rpm": 120}},
            **program,
        },
        "m": {"mode": "Chat", "port": 9, "pricing": PRICING, "cpu": {"required_devices": [], "command": ["true"]}},
        "free": {"mode": "Chat", "port": 10, "command": ["true"]},
    }


def test_parse_config_gives_typed_blocks(tmp_path: Path) -> None:
    config = parse_config(document(), tmp_path)
    program = config.program
    assert program.budgets[0] == BudgetSpec("monthly", "global", "month", 50.0, "cost")
    assert program.budgets[0].limit == 50.0 and program.budgets[1].key == "b"
    assert program.api_keys == (ConfigKey(hash_key("sk-a"), "config-key-0"),
                                ConfigKey(hash_key("sk-b"), "b", ("m",), 6.0, 600.0))
    assert program.rate_limits == RateLimits(key_rpm=600.0, key_tpm=100000.0, ip_rpm=120.0)
    book = config.models["m"].pricing
    assert isinstance(book, PriceBook) and len(book.blocks) == 1
    pricing = book.at(0.0)
    assert pricing is not None and pricing.volume_tiers == (VolumeTier(10, 0.5, 2.0),) and pricing.per == 1000.0
    assert config.models["free"].pricing is None
    assert config.raw["program"]["api_keys"][0] == "sk-a"  # raw stays the document, for /api/config


def test_defaults_are_typed_and_empty(tmp_path: Path) -> None:
    program = parse_config({"program": {}}, tmp_path).program
    assert (program.api_keys, program.budgets, program.rate_limits) == ((), (), RateLimits())


@pytest.mark.parametrize("program, path, message", [
    ({"budgets": [{"limit": "lots"}]}, "program.budgets[0].limit", "expected a positive number"),
    ({"budgets": {"limit": 5}}, "program.budgets", "expected list"),
    ({"api_keys": [{"name": "no secret"}]}, "program.api_keys[0]", "expected a key string"),
    ({"api_keys": [{"key": "sk", "models": "m"}]}, "program.api_keys[0].models", "expected list of model names"),
    ({"api_keys": [{"key": "sk", "rpm": "60"}]}, "program.api_keys[0].rpm", "expected number >= 0"),
    ({"rate_limits": []}, "program.rate_limits", "expected object"),
    ({"rate_limits": {"per_user": {}}}, "program.rate_limits.per_user", "expected per_key or per_ip"),
    ({"rate_limits": {"per_ip": {"tpm": 5}}}, "program.rate_limits.per_ip.tpm", "unknown key; expected rpm"),
    ({"rate_limits": {"per_key": {"rpm": -1}}}, "program.rate_limits.per_key.rpm", "expected number >= 0"),
])
def test_bad_blocks_name_their_path(tmp_path: Path, program: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(document(**program), tmp_path)
    assert err.value.path == path
    assert err.value.message.startswith(f"{path}: {message}")


def test_bad_pricing_names_the_model(tmp_path: Path) -> None:
    doc = document()
    doc["m"]["pricing"] = {"input": 1}
    with pytest.raises(ConfigError) as err:
        parse_config(doc, tmp_path)
    assert err.value.path == "models.m.pricing.output"


def test_program_config_built_in_code_takes_json_or_typed_blocks() -> None:
    program = ProgramConfig(api_keys=("sk-a",), budgets=[{"limit": 5}], rate_limits={"per_ip": {"rpm": 2}})
    assert program.api_keys[0].hash == hash_key("sk-a")
    assert program.budgets == (BudgetSpec("budget 0", "global", "month", 5.0, "cost"),)
    assert program.rate_limits.ip_rpm == 2.0
    again = ProgramConfig(api_keys=program.api_keys, budgets=program.budgets, rate_limits=program.rate_limits)
    assert again.api_keys is program.api_keys and again.budgets is program.budgets


@pytest.fixture
def parse_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each parser runs (wrapped where config.py, loading.py and accounting.py look them up)."""
    import llm_manager.accounting.layer as setup_module

    counts: dict[str, int] = {}

    def counting(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] = counts.get(name, 0) + 1
            return fn(*args, **kwargs)
        return wrapper

    for name in ("parse_pricing", "parse_config_keys", "parse_budgets", "parse_rate_limits"):
        monkeypatch.setattr(config_module, name, counting(name, getattr(config_module, name)))
    monkeypatch.setattr(setup_module, "parse_pricing", counting("parse_pricing", setup_module.parse_pricing))
    wrapped = counting("parse_config", config_module.parse_config)
    monkeypatch.setattr(config_module, "parse_config", wrapped)  # load_config's call
    monkeypatch.setattr(loading, "parse_config", wrapped)
    return counts


def test_a_full_config_parses_exactly_once(tmp_path: Path, parse_counts: dict[str, int]) -> None:
    config = read_document(document(), tmp_path)
    security, pricer = Security(config.program), Pricer(config)
    assert parse_counts == {"parse_config": 1, "parse_pricing": 1, "parse_config_keys": 1, "parse_budgets": 1,
                            "parse_rate_limits": 1}
    assert pricer.prices["m"] is config.models["m"].pricing and pricer.prices["free"] is None
    assert security.keys[hash_key("sk-b")] == KeyInfo("cfg:b", "b", ("m",), 6.0, 600.0)
    assert security.budgets[0] == Budget("monthly", "global", "month", 50.0, "cost")
    assert security.key_limits == {"rpm": 600.0, "tpm": 100000.0} and security.ip_limits == {"rpm": 120.0}


def test_read_config_from_a_file_parses_once(tmp_path: Path, parse_counts: dict[str, int]) -> None:
    import json

    path = tmp_path / "config.json"
    path.write_text(json.dumps(document()))
    config = read_config(path)
    assert parse_counts["parse_config"] == 1 and parse_counts["parse_budgets"] == 1
    assert config.source == path.resolve() and config.program.budgets[0].limit == 50.0


def test_plugin_modes_checked_without_a_second_parse(tmp_path: Path, parse_counts: dict[str, int]) -> None:
    doc = document()
    doc["m"]["mode"] = "Chatt"  # any mode passes the structural parse; the interface plugins bound it
    with pytest.raises(ConfigError) as err:
        read_document(doc, tmp_path)
    assert err.value.path == "models.m.mode" and "expected one of" in err.value.message
    assert parse_counts["parse_config"] == 1


def test_config_module_does_not_import_pandas() -> None:
    code = "import sys, llm_manager.config.parse, llm_manager.config.files; assert 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
