"""Read a config completely: one parse (structure, keys, budgets, limits, pricing), then the modes the interface
plugins provide, which ``config.py`` cannot know without loading them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .parse import MODES, Config, load_config, parse_config


def known_modes(config: Config) -> tuple[str, ...] | None:
    """Modes served by the interface plugins the config points at (built-ins plus its folder)."""
    from ..plugin_loader import load_plugins

    names = []
    for cls in load_plugins("interfaces", "InterfacePlugin", config.program.interface_plugin_dir or None).classes:
        try:
            names.append(cls().interface_name)
        except Exception:  # a plugin needing arguments still gets its mode checked at serve time
            continue
    return tuple(names) or None


def check_modes(config: Config) -> Config:
    """Every model's ``mode`` must be one a plugin serves; the error names ``models.<name>.mode``."""
    modes = known_modes(config) or MODES
    for model in config.models.values():
        if model.mode not in modes:
            raise ConfigError(f"models.{model.name}.mode", f"expected one of {', '.join(modes)}")
    return config


def read_document(raw: Any, base_dir: Path, source: Path | None = None) -> Config:
    """Validate a parsed document fully; raises ConfigError naming the JSON path."""
    return check_modes(parse_config(raw, base_dir, source, ("*",)))


def read_config(path: Path | str) -> Config:
    """Read and validate a config file fully (relative paths in it are relative to its folder)."""
    return check_modes(load_config(path, ("*",)))


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "demo" / "demo.json"


def resolve_config_path(arg: str | None) -> Path:
    """The config file a command reads: the one given, else ./config.json, else the bundled demo."""
    if arg:
        return Path(arg)
    if Path("config.json").exists():
        return Path("config.json")
    return DEMO_CONFIG
