"""The ``program`` blocks for keys, budgets and rate limits, as typed frozen values and their parsers.

``config.parse_config`` runs these once, when the config is read, so ``security.Security`` and everything after
it take typed values and never re-validate. Config form (all optional, in ``program``)::

    "api_keys": ["sk-...", {"key": "sk-...", "name": "team-a", "models": ["chat"], "rpm": 60, "tpm": 100000},
                 {"key_hash": "sha256:<hex>", "name": "ci"}],
    "rate_limits": {"per_key": {"rpm": 600, "tpm": 1000000}, "per_ip": {"rpm": 120}},
    "budgets": [{"name": "monthly", "scope": "global", "period": "month", "limit": 50, "unit": "cost"},
                {"name": "team-a daily", "scope": "key", "key": "team-a", "period": "day", "limit": 200000,
                 "unit": "tokens"},
                {"name": "gpu", "period": "month", "limit": 100, "unit": "gpu_hours"}]

Errors are ``ConfigError(path, expected)`` naming the JSON path, like the rest of the config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

BUDGET_UNITS = ("cost", "tokens", "gpu_hours")
# Which limits each rate_limits scope takes: a per-IP token limit would never be applied, so it is refused.
RATE_LIMIT_KEYS = {"per_key": ("rpm", "tpm"), "per_ip": ("rpm",)}


def hash_key(secret: str) -> str:
    """Keys are long random strings, so one SHA-256 is enough (no password stretching needed)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ConfigKey:
    """An API key from ``program.api_keys``; only its hash is kept."""

    hash: str  # "sha256:<hex>"
    name: str
    models: tuple[str, ...] = ()  # empty: every model
    rpm: float | None = None  # None: program.rate_limits.per_key applies
    tpm: float | None = None


@dataclass(frozen=True)
class BudgetSpec:
    """A configured budget; ``security.Budget`` adds the counters for the current period."""

    name: str
    scope: str  # "global" | "key"
    period: str  # "day" | "month"
    limit: float
    unit: str  # "cost" | "tokens" | "gpu_hours" (GPU time the models held, measured from the usage store)
    key: str | None = None  # key id or name, for scope "key"


@dataclass(frozen=True)
class RateLimits:
    """``program.rate_limits``: defaults for keys without their own limits, and the per-client-IP limit."""

    key_rpm: float | None = None
    key_tpm: float | None = None
    ip_rpm: float | None = None


def _limit(value: Any, path: str) -> float | None:
    """A requests- or tokens-per-minute limit; null or 0 mean none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(path, "expected number >= 0")
    return float(value)


def _items(raw: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(raw, (list, tuple)):
        raise ConfigError(path, "expected list")
    return tuple(raw)


def parse_config_keys(raw: Any) -> dict[str, ConfigKey]:
    """``program.api_keys`` by hash (a later entry with the same secret replaces an earlier one)."""
    keys: dict[str, ConfigKey] = {}
    for i, k in enumerate(_items(raw, "program.api_keys")):
        p = f"program.api_keys[{i}]"
        if isinstance(k, str):
            k = {"key": k}
        if not isinstance(k, dict) or not (isinstance(k.get("key"), str) or isinstance(k.get("key_hash"), str)):
            raise ConfigError(p, "expected a key string or {key | key_hash, name, models, rpm, tpm}")
        digest = k["key_hash"] if isinstance(k.get("key_hash"), str) else hash_key(k["key"])
        if not digest.startswith("sha256:"):
            digest = "sha256:" + digest
        name = str(k.get("name", f"config-key-{i}"))
        models = k.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{p}.models", "expected list of model names")
        keys[digest] = ConfigKey(digest, name, tuple(models), _limit(k.get("rpm"), f"{p}.rpm"),
                                 _limit(k.get("tpm"), f"{p}.tpm"))
    return keys


def parse_budgets(raw: Any) -> tuple[BudgetSpec, ...]:
    out = []
    for i, b in enumerate(_items(raw, "program.budgets")):
        p = f"program.budgets[{i}]"
        if not isinstance(b, dict):
            raise ConfigError(p, "expected object {name, scope, period, limit, unit}")
        scope, period, unit = b.get("scope", "global"), b.get("period", "month"), b.get("unit", "cost")
        if scope not in ("global", "key"):
            raise ConfigError(f"{p}.scope", "expected global or key")
        if period not in ("day", "month"):
            raise ConfigError(f"{p}.period", "expected day or month")
        if unit not in BUDGET_UNITS:
            raise ConfigError(f"{p}.unit", "expected cost, tokens or gpu_hours")
        limit = b.get("limit")
        if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit <= 0:
            raise ConfigError(f"{p}.limit", "expected a positive number")
        if scope == "key" and not isinstance(b.get("key"), str):
            raise ConfigError(f"{p}.key", "expected the key's name or id for a key budget")
        out.append(BudgetSpec(str(b.get("name", f"budget {i}")), scope, period, float(limit), unit, b.get("key")))
    return tuple(out)


def parse_rate_limits(raw: Any) -> RateLimits:
    p = "program.rate_limits"
    if not isinstance(raw, dict):
        raise ConfigError(p, "expected object")
    for scope, block in raw.items():
        if scope not in RATE_LIMIT_KEYS or not isinstance(block, dict):
            raise ConfigError(f"{p}.{scope}", "expected per_key or per_ip: {rpm, tpm}")
        for key in block:
            if key not in RATE_LIMIT_KEYS[scope]:
                raise ConfigError(f"{p}.{scope}.{key}", f"unknown key; expected {', '.join(RATE_LIMIT_KEYS[scope])}")
    per_key, per_ip = raw.get("per_key", {}), raw.get("per_ip", {})
    return RateLimits(_limit(per_key.get("rpm"), f"{p}.per_key.rpm"), _limit(per_key.get("tpm"), f"{p}.per_key.tpm"),
                      _limit(per_ip.get("rpm"), f"{p}.per_ip.rpm"))


PROTOCOLS = ("openai", "anthropic", "responses", "ollama")
# What known model servers speak natively (their requests are relayed as they are, not translated).
NATIVE_BY_SERVER = {"llama-server": ("openai", "anthropic", "responses")}


def parse_protocols(raw: Any, launchers: tuple[str, ...], path: str) -> tuple[str, ...]:
    """The client protocols a model's server speaks itself: the config's list, else what a known server speaks
    (recognised in the launch commands), else OpenAI's alone. The others are translated to chat completions."""
    if raw is None:
        for server, spoken in NATIVE_BY_SERVER.items():
            if any(server in launcher for launcher in launchers):
                return spoken
        return ("openai",)
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x in PROTOCOLS for x in raw):
        raise ConfigError(path, f"expected a list of protocols the server speaks, from {', '.join(PROTOCOLS)}")
    if "openai" not in raw:
        raise ConfigError(path, "expected \"openai\" among them (the manager speaks chat completions to every model)")
    return tuple(raw)


def parse_batch_settings(raw: dict[str, Any], path: str) -> dict[str, float]:
    """``batch_share`` (0 < x <= 1) and ``batch_discount`` (0 <= x <= 1) of a program or model block."""
    out: dict[str, float] = {}
    for key, low in (("batch_share", 0.0), ("batch_discount", -1e-9)):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low < v <= 1:
                raise ConfigError(f"{path}.{key}", "expected a number " + ("in (0, 1]" if low == 0 else "in [0, 1]"))
            out[key] = float(v)
    return out


def parse_cache_settings(raw: dict[str, Any], path: str, program: bool) -> dict[str, Any]:
    """The response cache's keys: ``cache_mb`` (>= 0, 0 turns the cache off) in the program block, ``cache``
    (true or false; unset: on for Embedding and Reranker models) in a model block."""
    key = "cache_mb" if program else "cache"
    if key not in raw:
        return {}
    v = raw[key]
    if program and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
        raise ConfigError(f"{path}.{key}", "expected a number >= 0 (MB; 0 turns the response cache off)")
    if not program and not isinstance(v, bool):
        raise ConfigError(f"{path}.{key}", "expected true or false")
    return {key: float(v) if program else v}
