"""Simulated GPUs declared in ``program.simulated_devices``: the stand-in for real GPUs in tests and the demo.

A simulated GPU's used memory is what llm-manager's loaded models hold on it (the ``ledger``), plus
the ``used_memory_mb`` the config says other programs hold, so placement behaves as on real hardware.
Its power draw is deterministic, so energy accounting can be checked by hand: ``idle_watts`` plus the share of
``max_watts - idle_watts`` that the models' memory is of the total (``power_watts``, as NVML reports it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugins.devices.Base_Class import DevicePlugin

IDLE_WATTS = 50.0
MAX_WATTS = 300.0


class SimulatedGPU(DevicePlugin):
    def __init__(self, name: str = "sim-gpu", total_memory_mb: int = 8192, used_memory_mb: int = 0,
                 ledger: Callable[[str], int] | None = None, idle_watts: float = IDLE_WATTS,
                 max_watts: float = MAX_WATTS):
        super().__init__(name)
        self.total_memory_mb = total_memory_mb
        self.external_used_mb = used_memory_mb
        self.ledger = ledger or (lambda _name: 0)
        self.online = True
        self.idle_watts, self.max_watts = idle_watts, max_watts

    def power_watts(self, models_mb: float) -> float:
        """Idle power plus the models' memory share of the rest (other programs' memory draws nothing here)."""
        share = min(1.0, max(0.0, models_mb / self.total_memory_mb))
        return round(self.idle_watts + (self.max_watts - self.idle_watts) * share, 3)

    def set_online(self, online: bool, reason: str = "simulated outage") -> None:
        """Tests and demos flip a simulated GPU on and off."""
        self.online = online
        self.offline_reason = "" if online else reason

    def is_online(self) -> bool:
        return self.online

    def get_devices_info(self) -> dict[str, Any]:
        models_mb = int(self.ledger(self.device_name))
        used = min(self.total_memory_mb, self.external_used_mb + models_mb)
        return {
            "device_type": "GPU",
            "memory_type": "VRAM (simulated)",
            "total_memory_mb": self.total_memory_mb,
            "available_memory_mb": self.total_memory_mb - used,
            "used_memory_mb": used,
            "usage_percentage": round(100.0 * used / self.total_memory_mb, 1),
            "temperature_celsius": 35.0 + 30.0 * used / self.total_memory_mb,
            "power_watts": self.power_watts(models_mb),
        }

    @classmethod
    def discover(cls, context: dict[str, Any]) -> list[DevicePlugin]:
        program = context.get("program")
        ledger = context.get("ledger")
        sims = getattr(program, "simulated_devices", ()) or ()
        return [cls(s.name, s.total_memory_mb, s.used_memory_mb, ledger, getattr(s, "idle_watts", IDLE_WATTS),
                    getattr(s, "max_watts", MAX_WATTS)) for s in sims]
