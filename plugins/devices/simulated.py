"""Simulated GPUs declared in ``program.simulated_devices``: the stand-in for real GPUs in tests and the demo.

A simulated GPU's used memory is what llm-manager's loaded models hold on it, plus the ``used_memory_mb`` the config
says other programs hold, so placement behaves as on real hardware. A loaded model holds what its profile declares,
unless its process registered a footprint of its own in the simulated driver table (the fake backend's
``--footprint-mb``, ``llm_manager.testing.sim_driver``): then it holds that, and ``get_processes`` reports it per
process as NVML does, so the manager learns real footprints here as it does on real GPUs.
Its power draw is deterministic, so energy accounting can be checked by hand: ``idle_watts`` plus the share of
``max_watts - idle_watts`` that the models' memory is of the total (``power_watts``, as NVML reports it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llm_manager.testing import sim_driver
from plugins.devices.Base_Class import DevicePlugin

# device name -> (process group leader pid or None, declared MB) of each loaded model on it (the manager's snapshot)
Held = Callable[[str], Sequence[tuple[int | None, int]]]

IDLE_WATTS = 50.0
MAX_WATTS = 300.0


class SimulatedGPU(DevicePlugin):
    def __init__(self, name: str = "sim-gpu", total_memory_mb: int = 8192, used_memory_mb: int = 0,
                 ledger: Callable[[str], int] | None = None, idle_watts: float = IDLE_WATTS,
                 max_watts: float = MAX_WATTS, held: Held | None = None):
        super().__init__(name)
        self.held = held
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

    def _holders(self) -> list[tuple[int | None, int]] | None:
        """(pid, MB really held) per loaded model: the registered footprint, else the declared MB; None when the
        manager gives no per-process view (only the ledger)."""
        if self.held is None:
            return None
        held = list(self.held(self.device_name))
        real = sim_driver.footprints() if any(pid for pid, _ in held) else {}
        return [(pid, real.get(pid, mb) if pid else mb) for pid, mb in held]

    def get_processes(self) -> list[dict[str, Any]]:
        return [{"pid": pid, "used_memory_mb": mb} for pid, mb in self._holders() or [] if pid]

    def get_devices_info(self) -> dict[str, Any]:
        holders = self._holders()
        models_mb = int(self.ledger(self.device_name)) if holders is None else sum(mb for _, mb in holders)
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
        ledger, held = context.get("ledger"), context.get("held")
        sims = getattr(program, "simulated_devices", ()) or ()
        return [cls(s.name, s.total_memory_mb, s.used_memory_mb, ledger, getattr(s, "idle_watts", IDLE_WATTS),
                    getattr(s, "max_watts", MAX_WATTS), held) for s in sims]
