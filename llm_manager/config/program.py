"""The ``program`` block read into ``ProgramConfig``'s fields: how this manager runs (its address, devices, store,
keys, budgets, limits, its node in a cluster)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .alerts import parse_alerts
from .blocks import parse_batch_settings, parse_cache_settings
from .readers import _bool, _choice, _dict, _expect, _int, _number, _str, _str_list, _str_map

MODES = ("Chat", "Base", "Embedding", "Reranker")
PROGRAM_KEYS = {
    "host", "port", "alive_time", "Disable_GPU_monitoring", "device_plugin_dir", "interface_plugin_dir",
    "log_level", "TokenTracker", "simulated_devices", "devices", "api_keys", "admin_key", "budgets",
    "rate_limits", "cors_origins", "database_url", "data_dir", "max_body_mb", "monitor_interval",
    "log_dir", "flush_interval", "currency", "access_log", "allowed_hosts", "metrics_key", "header_timeout",
    "responses_retention_days", "batch_share", "batch_discount", "cache_mb", "alerts", "scheduler", "min_residency",
    "max_wait", "node_name", "node_url", "cluster_secret",
}

@dataclass(frozen=True)
class SimulatedDevice:
    name: str
    total_memory_mb: int
    used_memory_mb: int = 0  # memory held by "other programs", for demos and tests


def program_fields(raw: dict[str, Any], base_dir: Path, warnings: list[str]) -> dict[str, Any]:
    """The ``program`` block's keys as ``ProgramConfig``'s fields (keys, budgets and rate limits still in their
    JSON form: ``ProgramConfig`` parses those, once)."""
    p = "program"
    kw: dict[str, Any] = {}
    for key in raw:
        if key not in PROGRAM_KEYS:
            warnings.append(f"{p}.{key}: unknown key, ignored")
    if "host" in raw:
        kw["host"] = _str(raw["host"], f"{p}.host")
    if "port" in raw:
        kw["port"] = _int(raw["port"], f"{p}.port", 0, 65535)
    if "alive_time" in raw:
        kw["alive_time"] = _number(raw["alive_time"], f"{p}.alive_time")
    if "Disable_GPU_monitoring" in raw:
        kw["disable_gpu_monitoring"] = _bool(raw["Disable_GPU_monitoring"], f"{p}.Disable_GPU_monitoring")
    for key in ("device_plugin_dir", "interface_plugin_dir", "data_dir", "log_dir"):
        if key in raw:
            kw[key] = str(base_dir / _str(raw[key], f"{p}.{key}").replace("\\", "/"))
    if "log_level" in raw:
        level = _str(raw["log_level"], f"{p}.log_level").upper()
        _expect(level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), f"{p}.log_level",
                "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        kw["log_level"] = level
    if "TokenTracker" in raw:
        modes = _str_list(raw["TokenTracker"], f"{p}.TokenTracker")
        kw["token_tracker"] = modes
    if "simulated_devices" in raw:
        devs = raw["simulated_devices"]
        _expect(isinstance(devs, list), f"{p}.simulated_devices", "expected list of {name, total_memory_mb}")
        sims = []
        for i, d in enumerate(devs):
            dp = f"{p}.simulated_devices[{i}]"
            _dict(d, dp)
            sims.append(SimulatedDevice(
                name=_str(d.get("name"), f"{dp}.name"),
                total_memory_mb=_int(d.get("total_memory_mb"), f"{dp}.total_memory_mb", 1),
                used_memory_mb=_int(d.get("used_memory_mb", 0), f"{dp}.used_memory_mb", 0),
            ))
        kw["simulated_devices"] = tuple(sims)
    if "devices" in raw:
        kw["devices"] = _str_map(raw["devices"], f"{p}.devices")
    if "cors_origins" in raw:
        kw["cors_origins"] = _str_list(raw["cors_origins"], f"{p}.cors_origins")
    if "database_url" in raw:
        kw["database_url"] = _str(raw["database_url"], f"{p}.database_url")
    for key in ("max_body_mb", "monitor_interval", "flush_interval", "responses_retention_days"):
        if key in raw:
            kw[key] = _number(raw[key], f"{p}.{key}", 0.001)
    for key in ("admin_key", "metrics_key"):
        if key in raw:
            kw[key] = _str(raw[key], f"{p}.{key}")
    if "allowed_hosts" in raw:
        kw["allowed_hosts"] = _str_list(raw["allowed_hosts"], f"{p}.allowed_hosts")
    kw.update(parse_batch_settings(raw, p))
    kw.update(parse_cache_settings(raw, p, program=True))
    if "header_timeout" in raw:
        kw["header_timeout"] = _number(raw["header_timeout"], f"{p}.header_timeout", 0.1)
    for key in ("api_keys", "budgets", "rate_limits"):  # JSON forms: ProgramConfig parses them
        if key in raw:
            kw[key] = raw[key]
    if "access_log" in raw:
        kw["access_log"] = _bool(raw["access_log"], f"{p}.access_log")
    if "currency" in raw:
        kw["currency"] = _str(raw["currency"], f"{p}.currency")
    if "alerts" in raw:
        kw["alerts"] = parse_alerts(raw["alerts"], f"{p}.alerts")
    if "scheduler" in raw:
        kw["scheduler"] = _choice(raw["scheduler"], f"{p}.scheduler", ("swap-aware", "fifo"))
    for key in ("min_residency", "max_wait"):
        if key in raw:
            kw[key] = _number(raw[key], f"{p}.{key}")
    for key in ("node_name", "node_url"):
        if key in raw:
            kw[key] = _str(raw[key], f"{p}.{key}")
    if "cluster_secret" in raw:
        secret = _str(raw["cluster_secret"], f"{p}.cluster_secret")
        _expect(len(secret) >= 16, f"{p}.cluster_secret", "expected a secret of at least 16 characters")
        kw["cluster_secret"] = secret
    return kw


