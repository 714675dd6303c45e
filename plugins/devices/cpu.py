"""The host CPU and its RAM, read through psutil, so models that run on the CPU can be placed too."""

from __future__ import annotations

import os
from typing import Any

import psutil

from plugins.devices.Base_Class import DevicePlugin

MB = 1024 * 1024

# Sensor chips that report the package temperature, most specific first (Intel, AMD, ARM boards).
_PREFERRED_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "acpitz")


def _cpu_temperature() -> float | None:
    """Hottest reading of the CPU's sensor chip, or None where psutil has no sensors (Windows, macOS,
    containers, VMs)."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    try:
        chips = read() or {}
    except Exception:  # unreadable /sys entries must not break the device reading
        return None
    entries = next((chips[c] for c in _PREFERRED_CHIPS if chips.get(c)), None)
    if entries is None:
        entries = next(iter(chips.values()), None)
    temps = [float(e.current) for e in entries or () if e.current is not None]
    return max(temps) if temps else None


def _load_average() -> tuple[float, float, float] | None:
    """1/5/15-minute load; psutil emulates it where the OS has none (Windows)."""
    try:
        return tuple(os.getloadavg())  # type: ignore[return-value]
    except (AttributeError, OSError):
        pass
    try:
        return tuple(psutil.getloadavg())  # type: ignore[return-value]
    except Exception:
        return None


class CPUDevice(DevicePlugin):
    """The CPU (always online); its memory is system RAM."""

    def __init__(self, name: str = "cpu"):
        super().__init__(name)
        # cpu_percent(interval=None) measures since the previous call; the first call always returns
        # 0.0, so prime it here and the first real reading is meaningful.
        psutil.cpu_percent(interval=None)

    def is_online(self) -> bool:
        return True

    def get_devices_info(self) -> dict[str, Any]:
        mem = psutil.virtual_memory()
        total, available = int(mem.total) // MB, int(mem.available) // MB
        return {
            "device_type": "CPU",
            "memory_type": "RAM",
            "total_memory_mb": total,
            "available_memory_mb": available,
            # total - available rather than mem.used, so used + available == total as for GPUs
            # (mem.used leaves out buffers/cache, which the kernel gives back under pressure).
            "used_memory_mb": total - available,
            "usage_percentage": float(psutil.cpu_percent(interval=None)),
            "temperature_celsius": _cpu_temperature(),
            "cpu_count": psutil.cpu_count(logical=True) or os.cpu_count(),
            "load_average": _load_average(),
        }

    @classmethod
    def discover(cls, context: dict[str, Any]) -> list[DevicePlugin]:
        return [cls()]
