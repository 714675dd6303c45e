"""NVIDIA GPUs read through NVML (the ``pynvml`` module from the ``nvidia-ml-py`` package).

One ``NvmlGPU`` per physical GPU. ``pynvml`` is imported lazily so this module imports (and
``discover`` simply returns nothing) on machines without the package or without an NVIDIA driver;
``nvml_status()`` says why, for /api/devices and diagnostics. Optional readings (power, temperature,
utilisation) are read one by one, so a card that does not support one still reports the rest.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from plugins.devices.Base_Class import DevicePlugin

log = logging.getLogger(__name__)

MB = 1024 * 1024

_lock = threading.Lock()
_attempted = False  # nvmlInit is tried once per process; _reset_for_tests() clears this
_nvml: Any = None  # the pynvml module once nvmlInit succeeded
_status: dict[str, Any] = {}


def _default_status() -> dict[str, Any]:
    return {"available": False, "reason": "NVML not initialised yet", "driver_version": None, "device_count": 0}


_status.update(_default_status())


def _text(value: Any) -> str:
    """Old pynvml versions return bytes for names, UUIDs and versions; new ones return str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _init() -> Any:
    """The initialised pynvml module, or None with the reason recorded; never raises.

    Guarded by a lock and a once-flag: nvmlInit is reference-counted by the driver and costly, and a
    failure (no driver) will not fix itself while the process runs.
    """
    global _attempted, _nvml
    with _lock:
        if _attempted:
            return _nvml
        _attempted = True
        try:
            import pynvml
        except ImportError as exc:
            _status.update(available=False, reason=f"pynvml not installed ({_describe(exc)})")
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded / anything odd
            _status.update(available=False, reason=f"nvmlInit failed: {_describe(exc)}")
            log.info("NVML unavailable: %s", _status["reason"])
            return None
        try:
            _status["driver_version"] = _text(pynvml.nvmlSystemGetDriverVersion())
        except Exception:  # informative only
            _status["driver_version"] = None
        try:
            _status["device_count"] = int(pynvml.nvmlDeviceGetCount())
        except Exception as exc:
            _status.update(available=False, reason=f"nvmlDeviceGetCount failed: {_describe(exc)}")
            return None
        _status.update(available=True, reason="")
        _nvml = pynvml
        return pynvml


def nvml_status() -> dict[str, Any]:
    """{"available", "reason", "driver_version", "device_count"}; initialises NVML if not yet tried."""
    _init()
    with _lock:
        return dict(_status)


def _reset_for_tests() -> None:
    """Forget the init attempt so the next call re-imports and re-initialises (tests swap pynvml)."""
    global _attempted, _nvml
    with _lock:
        _attempted = False
        _nvml = None
        _status.clear()
        _status.update(_default_status())


def _optional(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or None when the query is missing or unsupported on this card/driver."""
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # NVMLError_NotSupported, NoPermission, ... : one reading, not the device
        return None


class NvmlGPU(DevicePlugin):
    """One NVIDIA GPU, addressed by its NVML index and identified by its UUID."""

    def __init__(self, name: str, index: int, uuid: str, nvml: Any):
        super().__init__(name)
        self.index = index
        self.uuid = uuid
        self._nvml = nvml
        self._last_total_mb = 0

    # -- helpers -----------------------------------------------------------

    def _handle(self) -> Any:
        """A fresh handle; raises NVMLError when the GPU is gone. Checks the UUID so a re-enumerated
        index (card removed, indices shifted) is not mistaken for this card."""
        handle = self._nvml.nvmlDeviceGetHandleByIndex(self.index)
        uuid = _text(self._nvml.nvmlDeviceGetUUID(handle))
        if uuid != self.uuid:
            raise RuntimeError(f"GPU {self.index} is now {uuid}, expected {self.uuid}")
        return handle

    def _mark_offline(self, exc: BaseException) -> None:
        self.offline_reason = f"GPU {self.index} ({self.uuid}) not reachable: {_describe(exc)}"
        log.warning("%s", self.offline_reason)

    # -- DevicePlugin ------------------------------------------------------

    def match_names(self) -> list[str]:
        return [self.device_name, str(self.index), self.uuid]

    def is_online(self) -> bool:
        """Re-reads the handle: a GPU that fell off the bus (Xid 79) fails this query."""
        try:
            self._handle()
        except Exception as exc:
            self._mark_offline(exc)
            return False
        self.offline_reason = ""
        return True

    def get_devices_info(self) -> dict[str, Any]:
        """Current reading. If the GPU cannot be read at all, it reports no free memory (so nothing
        is placed on it) and sets ``offline_reason`` instead of raising into the monitor loop."""
        nv = self._nvml
        try:
            handle = self._handle()
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
        except Exception as exc:
            self._mark_offline(exc)
            total = self._last_total_mb
            return {
                "device_type": "GPU", "memory_type": "VRAM",
                "total_memory_mb": total, "available_memory_mb": 0, "used_memory_mb": total,
                "usage_percentage": None, "temperature_celsius": None,
                "index": self.index, "uuid": self.uuid, "memory_utilization_percentage": None,
                "power_watts": None, "power_limit_watts": None, "error": self.offline_reason,
            }
        total = int(mem.total) // MB
        self._last_total_mb = total
        util = _optional(nv.nvmlDeviceGetUtilizationRates, handle)
        temp = _optional(getattr(nv, "nvmlDeviceGetTemperature", None), handle,
                         getattr(nv, "NVML_TEMPERATURE_GPU", 0))
        power_mw = _optional(getattr(nv, "nvmlDeviceGetPowerUsage", None), handle)
        limit_mw = _optional(getattr(nv, "nvmlDeviceGetEnforcedPowerLimit", None), handle)
        if limit_mw is None:
            limit_mw = _optional(getattr(nv, "nvmlDeviceGetPowerManagementLimit", None), handle)
        return {
            "device_type": "GPU",
            "memory_type": "VRAM",
            "total_memory_mb": total,
            "available_memory_mb": int(mem.free) // MB,
            "used_memory_mb": int(mem.used) // MB,
            "usage_percentage": float(util.gpu) if util is not None else None,
            "temperature_celsius": float(temp) if temp is not None else None,
            "index": self.index,
            "uuid": self.uuid,
            "memory_utilization_percentage": float(util.memory) if util is not None else None,
            "power_watts": round(power_mw / 1000.0, 1) if power_mw is not None else None,
            "power_limit_watts": round(limit_mw / 1000.0, 1) if limit_mw is not None else None,
        }

    def get_processes(self) -> list[dict[str, Any]]:
        """Compute and graphics processes, one entry per pid. ``used_memory_mb`` is None when NVML
        cannot tell (usedGpuMemory None: e.g. Windows WDDM or a container without pid access)."""
        nv = self._nvml
        try:
            handle = self._handle()
        except Exception as exc:
            self._mark_offline(exc)
            return []
        by_pid: dict[int, int | None] = {}
        for query in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            procs = _optional(getattr(nv, query, None), handle) or []
            for proc in procs:
                pid = int(proc.pid)
                used = getattr(proc, "usedGpuMemory", None)
                mb = int(used) // MB if used is not None else None
                # A process that is both compute and graphics is listed twice with the same memory.
                old = by_pid.get(pid)
                by_pid[pid] = mb if old is None else (old if mb is None else max(old, mb))
        return [{"pid": pid, "used_memory_mb": mb} for pid, mb in by_pid.items()]

    @classmethod
    def discover(cls, context: dict[str, Any]) -> list[DevicePlugin]:
        """Every GPU NVML sees, or [] (never raising) when NVML is missing; see ``nvml_status()``.

        GPUs are listed even with ``Disable_GPU_monitoring`` set: placement needs them, only the
        caller's sampling changes. A single GPU that cannot be read is skipped with a warning.
        """
        nv = _init()
        if nv is None:
            return []
        try:  # re-read: discovery may run again after a GPU was added or lost
            count = int(nv.nvmlDeviceGetCount())
        except Exception as exc:
            log.warning("nvmlDeviceGetCount failed: %s", _describe(exc))
            count = int(_status.get("device_count") or 0)
        with _lock:
            _status["device_count"] = count
        found: list[DevicePlugin] = []
        for index in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                name = _text(nv.nvmlDeviceGetName(handle))
                uuid = _text(nv.nvmlDeviceGetUUID(handle))
            except Exception as exc:
                log.warning("NVML GPU %d skipped: %s", index, _describe(exc))
                continue
            found.append(cls(name, index, uuid, nv))
        return found
