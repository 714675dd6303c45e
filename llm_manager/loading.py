"""Read a config file completely: structure, modes the interface plugins provide, and the raw extension blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config, load_config, parse_config
from .errors import ConfigError
from .security import parse_budgets, parse_config_keys
from .usage.pricing import parse_pricing


def known_modes(raw: Any, base_dir: Path) -> tuple[str, ...] | None:
    """Modes served by the interface plugins the config points at (built-ins plus its folder)."""
    from .plugins import load_plugins

    folder = None
    if isinstance(raw, dict) and isinstance(raw.get("program"), dict):
        folder = raw["program"].get("interface_plugin_dir")
    extra = str(base_dir / folder) if isinstance(folder, str) else None
    names = []
    for cls in load_plugins("interfaces", "InterfacePlugin", extra).classes:
        try:
            names.append(cls().interface_name)
        except Exception:  # a plugin needing arguments still gets its mode checked at serve time
            continue
    return tuple(names) or None


def validate_extensions(config: Config) -> None:
    """Check the blocks the core config loader keeps raw (pricing, keys, budgets): ConfigError naming the path."""
    for model in config.models.values():
        parse_pricing(model.pricing, f"models.{model.name}.pricing")
    parse_config_keys(config.program.api_keys)
    parse_budgets(config.program.budgets)
    limits = config.program.rate_limits
    for scope in limits:
        if scope not in ("per_key", "per_ip") or not isinstance(limits[scope], dict):
            raise ConfigError(f"program.rate_limits.{scope}", "expected per_key or per_ip: {rpm, tpm}")


def read_document(raw: Any, base_dir: Path, source: Path | None = None) -> Config:
    """Validate a parsed document fully; raises ConfigError naming the JSON path."""
    first = parse_config(raw, base_dir, source, ("*",))  # structure first, so its errors name their path
    config = parse_config(raw, base_dir, source, known_modes(first.raw, first.base_dir))
    validate_extensions(config)
    return config


def read_config(path: Path | str) -> Config:
    cfg = load_config(path, ("*",))
    return read_document(dict(cfg.raw), cfg.base_dir, cfg.source)
