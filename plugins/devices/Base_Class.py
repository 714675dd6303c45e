"""Base class for device plugins, compatible with the original LLM-Manager's plugins.

A device plugin instance is one device (a GPU, the CPU, ...). Seed-style plugins subclass
``DevicePlugin``, call ``super().__init__(name)`` and implement ``is_online`` and
``get_devices_info``. Plugins that find several devices at run time (NVML, simulated GPUs)
override the ``discover`` classmethod to return one instance per device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

# Keys every get_devices_info() answer carries (the seed's contract).
INFO_KEYS = (
    "device_type",
    "memory_type",
    "total_memory_mb",
    "available_memory_mb",
    "used_memory_mb",
    "usage_percentage",
    "temperature_celsius",
)


class DevicePlugin(ABC):
    """One device whose memory the placement logic can reserve."""

    def __init__(self, device_name: str):
        self.device_name = device_name
        # Why the device is offline, shown at /api/devices; empty when online.
        self.offline_reason = ""

    @abstractmethod
    def is_online(self) -> bool:
        """True when the device can host models right now."""

    @abstractmethod
    def get_devices_info(self) -> dict[str, Any]:
        """A reading with at least the INFO_KEYS; extra keys (power_watts, ...) are shown as-is."""

    def get_processes(self) -> list[dict[str, Any]]:
        """Processes holding memory on this device: ``[{"pid": int, "used_memory_mb": int}]``."""
        return []

    def match_names(self) -> list[str]:
        """Strings a config device name is matched against (product name, index, UUID)."""
        return [self.device_name]

    @classmethod
    def discover(cls, context: dict[str, Any]) -> list[DevicePlugin]:
        """The devices this plugin class provides. ``context`` carries ``program`` (ProgramConfig),
        ``ledger`` (callable: device name -> MB that llm-manager's loaded models declare on it) and ``held``
        (callable: device name -> [(process group leader pid or None, declared MB)] of those models)."""
        return [cls()]  # type: ignore[call-arg]
