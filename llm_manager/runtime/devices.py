"""The devices the plugins found, read into plain dicts, and matched to the config's device names.

Readings run on a worker thread (NVML calls block); the IOLoop only sees the snapshots.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..config.parse import ProgramConfig
from ..plugin_loader import LoadedPlugins, PluginError, load_plugins
from .device_match import resolve_devices
from .placement import DeviceState

log = logging.getLogger(__name__)


class DeviceRegistry:
    def __init__(self, program: ProgramConfig, ledger: Callable[[str], int],
                 held: Callable[[str], list[tuple[int | None, int]]] | None = None):
        self.program = program
        self.ledger = ledger
        self.held = held
        self.instances: list[Any] = []
        self.loaded = LoadedPlugins()
        self.errors: list[PluginError] = []
        self._lock = threading.Lock()
        self.last: list[dict[str, Any]] = []
        self.last_ts = 0.0

    def load(self) -> None:
        """(Re)discover devices from the device plugins."""
        loaded = load_plugins("devices", "DevicePlugin", self.program.device_plugin_dir or None)
        errors = list(loaded.errors)
        instances: list[Any] = []
        context = {"program": self.program, "ledger": self.ledger, "held": self.held}
        for cls in loaded.classes:
            try:
                found = cls.discover(context)
            except Exception as exc:  # a plugin that cannot discover is reported, not fatal
                errors.append(PluginError(loaded.files.get(cls.__name__, cls.__name__), f"discover failed: {exc}"))
                continue
            for inst in found:
                inst._plugin_name = cls.__name__
                instances.append(inst)
        with self._lock:
            self.loaded, self.errors, self.instances = loaded, errors, instances

    def read(self) -> list[dict[str, Any]]:
        """One reading per device (blocking: call from a worker thread)."""
        readings = []
        with self._lock:
            instances = list(self.instances)
        for inst in instances:
            entry: dict[str, Any] = {"name": inst.device_name, "plugin": getattr(inst, "_plugin_name", "")}
            try:
                online = bool(inst.is_online())
                info = inst.get_devices_info() if online else {}
            except Exception as exc:  # a device that errors is offline, with the reason
                online, info = False, {}
                inst.offline_reason = f"{type(exc).__name__}: {exc}"
            entry.update(info)
            entry["online"] = online and not info.get("error")
            entry["offline_reason"] = "" if entry["online"] else (inst.offline_reason or info.get("error") or "offline")
            for key in ("total_memory_mb", "available_memory_mb", "used_memory_mb"):
                entry.setdefault(key, 0)
            if entry["online"]:
                try:
                    entry["processes"] = list(inst.get_processes())
                except Exception:
                    entry["processes"] = []
            entry.setdefault("usage_percentage", None)
            entry.setdefault("temperature_celsius", None)
            readings.append(entry)
        self.last, self.last_ts = readings, time.time()
        return readings

    def resolve(self, config_names: Iterable[str]) -> dict[str, str | None]:
        """Config device name -> device name (or None when nothing matches)."""
        with self._lock:
            instances = list(self.instances)
        mapping = resolve_devices(list(config_names), instances, self.program.devices)
        return {name: (inst.device_name if inst is not None else None) for name, inst in mapping.items()}

    def placement_view(self, config_names: Iterable[str], readings: list[dict[str, Any]]) -> dict[str, DeviceState]:
        """DeviceState per config device name, from one set of readings."""
        by_name = {r["name"]: r for r in readings}
        view = {}
        for cfg_name, dev_name in self.resolve(config_names).items():
            r = by_name.get(dev_name) if dev_name else None
            if r is None:
                view[cfg_name] = DeviceState(cfg_name, False, 0, 0, "no device matches this name")
            else:
                view[cfg_name] = DeviceState(cfg_name, bool(r["online"]), int(r.get("available_memory_mb") or 0),
                                             int(r.get("total_memory_mb") or 0), r.get("offline_reason", ""))
        return view

    def processes(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            instances = list(self.instances)
        out = {}
        for inst in instances:
            try:
                out[inst.device_name] = inst.get_processes()
            except Exception:
                out[inst.device_name] = []
        return out
