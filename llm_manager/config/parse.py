"""Load and validate config.json (the original LLM-Manager's format, plus additive extensions).

Every error names the JSON path of the bad value and what was expected, e.g.
``models.Qwen3-Embedding-8B.RTX4060.memory_mb.rtx 4060: expected integer``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..accounting.pricing import PriceBook, parse_pricing
from ..errors import ConfigError
from .alerts import AlertsSpec
from .blocks import (
    BudgetSpec,
    ConfigKey,
    RateLimits,
    parse_batch_settings,
    parse_budgets,
    parse_cache_settings,
    parse_config_keys,
    parse_protocols,
    parse_rate_limits,
)
from .program import MODES, PROGRAM_KEYS, SimulatedDevice, program_fields
from .readers import _bool, _choice, _dict, _expect, _int, _number, _str, _str_list, _str_map
from .serving import SERVING_KEYS, UpstreamSpec, parse_serving

DEFAULT_START_TIMEOUT = 300.0

# Scalar/list keys a model block may hold; any other dict-valued key is a hardware profile.
MODEL_KEYS = {
    "aliases", "mode", "port", "auto_start", "command", "env", "cwd", "ttl", "start_timeout", "health_path",
    "max_concurrency", "max_queue", "queue_timeout", "pricing", "description", "stop_timeout", "request_timeout",
    "protocols", "batch_share", "batch_discount", "cache", "price_per_hour", "loading_feedback", "unload", "min_residency",
    *SERVING_KEYS,
}
PROFILE_KEYS = {"required_devices", "bat_path", "memory_mb", "command", "env", "cwd", "price_per_hour"}
__all__ = ["MODES", "PROGRAM_KEYS", "Config", "ModelConfig", "Profile", "ProgramConfig", "SimulatedDevice", "load_config",
           "parse_config"]


@dataclass(frozen=True)
class Profile:
    """One way to run a model: which devices it needs, how much memory on each, how to launch it."""

    name: str
    required_devices: tuple[str, ...]
    memory_mb: Mapping[str, int]
    bat_path: str | None = None
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    price_per_hour: float | None = None  # runtime price while loaded with this profile; None: the model's


@dataclass(frozen=True)
class ModelConfig:
    name: str
    mode: str
    port: int | None  # None: no local process, only ``upstreams``
    profiles: tuple[Profile, ...]
    aliases: tuple[str, ...] = ()
    auto_start: bool = False
    ttl: float | None = None  # seconds idle before unload; None -> program.alive_time
    start_timeout: float = DEFAULT_START_TIMEOUT
    stop_timeout: float = 10.0
    health_path: str | None = None
    max_concurrency: int | None = None
    max_queue: int = 100
    queue_timeout: float = 600.0
    request_timeout: float = 600.0  # seconds the upstream may take to answer (or between stream chunks)
    pricing: PriceBook | None = None  # dated price blocks (accounting/pricing.py); None: the model is free
    description: str = ""
    protocols: tuple[str, ...] = ("openai",)  # what its server speaks natively (config_blocks.parse_protocols)
    batch_share: float | None = None  # None: program.batch_share (Batches API lines' share of max_concurrency)
    batch_discount: float | None = None  # None: program.batch_discount (fraction off batch lines' price)
    cache: bool | None = None  # response cache; None: on for Embedding and Reranker, off otherwise (gateway/cache)
    price_per_hour: float | None = None  # runtime price while loaded (a profile's own price wins)
    max_instances: int = 1  # local processes of this model that may run at once
    min_instances: int = 0  # kept running (auto_start means at least 1)
    ports: tuple[int, ...] | None = None  # each instance's port; None: instance i listens on port + i
    scale_up_after: float = 1.0  # seconds requests may wait in the queue before one more instance starts
    upstreams: tuple[UpstreamSpec, ...] = ()  # remote endpoints serving this model (config/serving.py)
    fallbacks: tuple[str, ...] = ()  # other models tried in order when this one cannot serve
    loading_feedback: bool = True  # a stream waiting for a cold start gets ": loading ..." SSE comments
    unload: str = "stop"  # how an idle or evicted instance frees its memory: "stop", or "sleep" (vLLM's sleep mode)
    min_residency: float | None = None  # seconds loaded before it may be evicted for another; None: the program's

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def local(self) -> bool:
        """Whether the manager runs processes of this model (else it is served by upstreams only)."""
        return self.port is not None and bool(self.profiles)

    def instance_port(self, instance: int) -> int:
        """The port instance ``instance`` (0-based) listens on."""
        assert self.port is not None, f"model {self.name} has no local instances"
        return self.ports[instance] if self.ports else self.port + instance

    @property
    def instance_ports(self) -> tuple[int, ...]:
        return tuple(self.instance_port(i) for i in range(self.max_instances)) if self.local else ()


@dataclass(frozen=True)
class ProgramConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    alive_time: float = 60.0  # minutes a ready model may idle before it stops; 0 = never
    disable_gpu_monitoring: bool = False
    device_plugin_dir: str = ""
    interface_plugin_dir: str = ""
    log_level: str = "INFO"
    token_tracker: tuple[str, ...] = MODES
    simulated_devices: tuple[SimulatedDevice, ...] = ()
    devices: Mapping[str, str] = field(default_factory=dict)  # config device name -> GPU index or UUID
    cors_origins: tuple[str, ...] = ()
    database_url: str | None = None
    data_dir: str = ""
    log_dir: str = ""
    max_body_mb: float = 32.0
    monitor_interval: float = 2.0
    flush_interval: float = 1.0
    admin_key: str | None = None
    api_keys: tuple[ConfigKey, ...] = ()
    budgets: tuple[BudgetSpec, ...] = ()
    rate_limits: RateLimits = RateLimits()
    currency: str = "USD"
    access_log: bool = True  # one log line per request (tornado.access); off saves ~13 % CPU per request
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback and ``host`` (DNS-rebinding guard)
    metrics_key: str | None = None  # a read-only key for /api/metrics (a scraper need not hold the admin key)
    header_timeout: float = 30.0  # seconds a connection may take to send a request's headers (or idle between)
    responses_retention_days: float = 30.0  # stored /v1/responses answers older than this are deleted
    batch_share: float = 0.5  # at most this share of a model's max_concurrency serves batch lines
    batch_discount: float = 0.0  # fraction taken off batch lines' price (0.5: half price)
    cache_mb: float = 64.0  # the response cache's memory bound (MiB of answers); 0 turns it off
    alerts: AlertsSpec = AlertsSpec()  # webhooks and the log for budget, crash, device and store alerts
    scheduler: str = "swap-aware"  # or "fifo": a start that needs others' memory evicts at once or fails
    min_residency: float = 10.0  # seconds a loaded model stays before it may be evicted for another (swap-aware)
    max_wait: float = 60.0  # the longest a start waits for memory that busy or fresh models hold (swap-aware)
    node_name: str = field(default_factory=socket.gethostname)  # this manager among those sharing a database
    node_url: str = ""  # where the other nodes reach it; "": http://<host>:<port>
    cluster_secret: str | None = None  # what nodes sharing a database present to each other (forwarded requests)

    def __post_init__(self) -> None:
        """The one place keys, budgets and rate limits are parsed: from the config file (``_program`` passes
        them as JSON) or from code and tests; values already typed pass through, so each block parses once."""
        if not _all(self.api_keys, ConfigKey):
            object.__setattr__(self, "api_keys", tuple(parse_config_keys(self.api_keys).values()))
        if not _all(self.budgets, BudgetSpec):
            object.__setattr__(self, "budgets", parse_budgets(self.budgets))
        if not isinstance(self.rate_limits, RateLimits):
            object.__setattr__(self, "rate_limits", parse_rate_limits(self.rate_limits))


def _all(values: Any, cls: type) -> bool:
    return isinstance(values, tuple) and all(isinstance(v, cls) for v in values)



@dataclass(frozen=True)
class Config:
    program: ProgramConfig
    models: Mapping[str, ModelConfig]
    base_dir: Path
    source: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def idle_ttl(self, model: ModelConfig) -> float:
        """Seconds a ready model may sit idle before it is stopped (0 = never)."""
        return model.ttl if model.ttl is not None else self.program.alive_time * 60.0


# ---------------------------------------------------------------- sections


def _command(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        import shlex

        value = shlex.split(value)
    _expect(isinstance(value, list) and len(value) > 0, path, "expected non-empty list of strings (argv)")
    return _str_list(value, path)


def _profile(name: str, raw: dict[str, Any], path: str, model_cmd: tuple[str, ...] | None,
             warnings: list[str]) -> Profile:
    for key in raw:
        if key not in PROFILE_KEYS:
            warnings.append(f"{path}.{key}: unknown key, ignored")
    devices = _str_list(raw.get("required_devices", []), f"{path}.required_devices")
    memory_raw = _dict(raw.get("memory_mb", {}), f"{path}.memory_mb")
    memory: dict[str, int] = {}
    for dev, mb in memory_raw.items():
        _expect(dev in devices, f"{path}.memory_mb.{dev}", f"expected one of required_devices {list(devices)}")
        memory[dev] = _int(mb, f"{path}.memory_mb.{dev}", 0)
    for dev in devices:
        memory.setdefault(dev, 0)
    bat_path = _str(raw["bat_path"], f"{path}.bat_path") if "bat_path" in raw else None
    command = _command(raw["command"], f"{path}.command") if "command" in raw else None
    _expect(bat_path is not None or command is not None or model_cmd is not None, path,
            "expected bat_path or command (in the profile or the model)")
    return Profile(
        name=name,
        required_devices=devices,
        memory_mb=memory,
        bat_path=bat_path,
        command=command,
        env=_str_map(raw.get("env", {}), f"{path}.env"),
        cwd=_str(raw["cwd"], f"{path}.cwd") if "cwd" in raw else None,
        price_per_hour=_number(raw["price_per_hour"], f"{path}.price_per_hour") if "price_per_hour" in raw else None,
    )


def _model(name: str, raw: Any, warnings: list[str]) -> ModelConfig:
    p = f"models.{name}"
    _expect(isinstance(raw, dict), p, "expected object (a model block)")
    _expect("mode" in raw, f"{p}.mode", f"required: one of {', '.join(MODES)}")
    mode = _str(raw["mode"], f"{p}.mode")
    remote_only = "upstreams" in raw and "port" not in raw
    _expect("port" in raw or remote_only, f"{p}.port", "required: the port the model server listens on "
            "(only a model served by upstreams alone has none)")
    port = None if remote_only else _int(raw["port"], f"{p}.port", 1, 65535)
    model_cmd = _command(raw["command"], f"{p}.command") if "command" in raw else None
    model_env = _str_map(raw.get("env", {}), f"{p}.env")
    model_cwd = _str(raw["cwd"], f"{p}.cwd") if "cwd" in raw else None
    profiles = []
    for key, value in raw.items():
        if key in MODEL_KEYS:
            continue
        if isinstance(value, dict):
            prof = _profile(key, value, f"{p}.{key}", model_cmd, warnings)
            profiles.append(Profile(
                name=prof.name, required_devices=prof.required_devices, memory_mb=prof.memory_mb,
                bat_path=prof.bat_path, command=prof.command or (None if prof.bat_path else model_cmd),
                env={**model_env, **prof.env}, cwd=prof.cwd or model_cwd, price_per_hour=prof.price_per_hour,
            ))
        else:
            warnings.append(f"{p}.{key}: unknown key, ignored")
    _expect(not (remote_only and profiles), f"{p}.port", "required with a hardware profile: the port its server "
            "listens on")
    if not profiles and not remote_only:
        _expect(model_cmd is not None, p, "expected at least one hardware profile (or a model-level command)")
        profiles.append(Profile("default", (), {}, command=model_cmd, env=model_env, cwd=model_cwd))
    ttl = _number(raw["ttl"], f"{p}.ttl") if "ttl" in raw else None
    health = raw.get("health_path")
    if health is not None:
        _expect(isinstance(health, str) and health.startswith("/"), f"{p}.health_path", "expected a path like /health")
    maxc = _int(raw["max_concurrency"], f"{p}.max_concurrency", 1) if "max_concurrency" in raw else None
    pricing = parse_pricing(raw["pricing"], f"{p}.pricing") if "pricing" in raw else None
    return ModelConfig(
        name=name, mode=mode, port=port, profiles=tuple(profiles),
        aliases=_str_list(raw.get("aliases", []), f"{p}.aliases"),
        auto_start=_bool(raw.get("auto_start", False), f"{p}.auto_start"),
        ttl=ttl,
        start_timeout=_number(raw.get("start_timeout", DEFAULT_START_TIMEOUT), f"{p}.start_timeout", 0.1),
        stop_timeout=_number(raw.get("stop_timeout", 10.0), f"{p}.stop_timeout", 0.0),
        health_path=health,
        max_concurrency=maxc,
        max_queue=_int(raw.get("max_queue", 100), f"{p}.max_queue", 0),
        queue_timeout=_number(raw.get("queue_timeout", 600.0), f"{p}.queue_timeout", 0.1),
        request_timeout=_number(raw.get("request_timeout", 600.0), f"{p}.request_timeout", 0.1),
        pricing=pricing,
        description=str(raw.get("description", "")),
        protocols=parse_protocols(raw.get("protocols"), tuple(" ".join(pr.command or ()) + (pr.bat_path or "")
                                                              for pr in profiles), f"{p}.protocols"),
        price_per_hour=_number(raw["price_per_hour"], f"{p}.price_per_hour") if "price_per_hour" in raw else None,
        loading_feedback=_bool(raw.get("loading_feedback", True), f"{p}.loading_feedback"),
        unload=_choice(raw.get("unload", "stop"), f"{p}.unload", ("stop", "sleep")),
        min_residency=_number(raw["min_residency"], f"{p}.min_residency") if "min_residency" in raw else None,
        **parse_batch_settings(raw, p),
        **parse_cache_settings(raw, p, program=False),
        **parse_serving(raw, p, port),
    )


def parse_config(raw: Any, base_dir: Path | str = ".", source: Path | None = None,
                 known_modes: tuple[str, ...] | None = None) -> Config:
    """Validate a parsed config document. ``known_modes`` (from the interface plugins) bounds ``mode``;
    ``("*",)`` accepts any mode (a first pass, before the plugins are known)."""
    _expect(isinstance(raw, dict), "", "config must be a JSON object with a 'program' block and model blocks")
    base = Path(base_dir).resolve()
    warnings: list[str] = []
    program = ProgramConfig(**program_fields(_dict(raw.get("program", {}), "program"), base, warnings))
    modes = known_modes or MODES
    models: dict[str, ModelConfig] = {}
    owners: dict[str, str] = {}
    ports: dict[int, str] = {}
    for name, block in raw.items():
        if name == "program":
            continue
        model = _model(name, block, warnings)
        if "*" not in modes:
            _expect(model.mode in modes, f"models.{name}.mode", f"expected one of {', '.join(modes)}")
        for i, port in enumerate(model.instance_ports):
            if port in ports:
                where = f"models.{name}.ports[{i}]" if model.ports else f"models.{name}.port"
                what = f"port {port}" + (f" (instance {i}: port + {i})" if i and not model.ports else "")
                raise ConfigError(where, f"{what} is already used by model {ports[port]}")
            ports[port] = name
        for alias in model.names:
            if alias in owners and owners[alias] != name:
                raise ConfigError(f"models.{name}.aliases", f"name {alias!r} is already used by model {owners[alias]}")
            owners[alias] = name
        models[name] = model
    for name, model in models.items():
        for i, other in enumerate(model.fallbacks):
            _expect(other in owners and owners[other] != name, f"models.{name}.fallbacks[{i}]",
                    "expected another model's name or alias")
    return Config(program=program, models=models, base_dir=base, source=source, raw=raw, warnings=tuple(warnings))


def load_config(path: str | Path, known_modes: tuple[str, ...] | None = None) -> Config:
    """Read and validate a config file; relative paths in it are relative to its folder."""
    src = Path(path)
    try:
        text = src.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config {src}: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("", f"{src}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_config(raw, src.resolve().parent, src.resolve(), known_modes)
