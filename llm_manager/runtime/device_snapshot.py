"""The Manager's view of its devices: readings taken together with what its models hold.

Placement must decide on one consistent snapshot: the holdings are taken on the loop right before
the (threaded) device read, and simulated devices report that same snapshot's ledger. The devices
API shows the last readings with the models holding memory on each.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections import deque
from typing import Any

from .devices import DeviceRegistry
from .placement import Holding
from .supervisor import State, Supervisor

# The ledger (MB per device held by loaded models) that a device read in progress must report.
_LEDGER: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("llm_manager_ledger", default=None)


def _group_of(pid: int | None) -> int | None:
    """The process group of a pid (model processes lead their own group), or None."""
    try:
        return os.getpgid(pid) if pid else None
    except (ProcessLookupError, PermissionError):
        return None


class DeviceSnapshotMixin:
    """Mixed into Manager; relies on its ``supervisors``, ``devices``, ``device_readings`` and ``device_history``."""

    supervisors: dict[str, Supervisor]
    devices: DeviceRegistry
    device_readings: list[dict[str, Any]]
    device_history: deque[dict[str, Any]]

    def _ledger(self, device_name: str) -> int:
        """MB that loaded (ready or stopping) models hold on a device: simulated GPUs report it as used.

        During ``read_devices`` it answers from the holdings snapshot that read was taken with (a context
        variable: the worker thread runs in a copy of the caller's context), never from live state."""
        ledger = _LEDGER.get()
        if ledger is None:
            ledger = self._snapshot()[1]
        return ledger.get(device_name, 0)

    def _snapshot(self) -> tuple[list[Holding], dict[str, int]]:
        """What our models hold now (for placement) and the MB per device that loaded ones hold (the ledger)."""
        holdings: list[Holding] = []
        ledger: dict[str, int] = {}
        for sup in self.supervisors.values():
            if sup.profile is None or sup.state not in (State.STARTING, State.READY, State.STOPPING):
                continue
            holdings.append(Holding(sup.model.name, dict(sup.profile.memory_mb), sup.state.value, sup.busy,
                                    sup.last_used, sup.profile.name, sup.id))
            if sup.state != State.STARTING:
                mapping = self.devices.resolve(sup.profile.required_devices)
                for cfg, mb in sup.profile.memory_mb.items():
                    if mapping.get(cfg):
                        ledger[mapping[cfg]] = ledger.get(mapping[cfg], 0) + mb
        return holdings, ledger

    async def read_devices(self) -> tuple[list[dict[str, Any]], list[Holding]]:
        """Device readings and model holdings as one snapshot.

        The holdings are taken on the loop before the (threaded) read and the read reports that same
        snapshot's ledger, so a model that becomes ready meanwhile is counted exactly once (as a
        reservation) instead of nowhere. On real GPUs a model loading during the read may be counted
        twice, in the reading and as a reservation: that errs on the safe side."""
        holdings, ledger = self._snapshot()
        ctx = contextvars.copy_context()
        ctx.run(_LEDGER.set, ledger)
        readings = await asyncio.get_running_loop().run_in_executor(None, ctx.run, self.devices.read)
        self.device_readings = readings
        self.device_history.append({"ts": self.devices.last_ts, "devices": [
            {k: r.get(k) for k in ("name", "online", "used_memory_mb", "total_memory_mb", "usage_percentage",
                                   "temperature_celsius")} for r in readings]})
        return readings, holdings

    async def sample_devices(self) -> list[dict[str, Any]]:
        return (await self.read_devices())[0]

    def devices_info(self) -> dict[str, Any]:
        """The last device readings, each with the models that hold memory on it."""
        holders: dict[str, list[dict[str, Any]]] = {}
        for sup in self.supervisors.values():
            if sup.profile is None or sup.state not in (State.STARTING, State.READY, State.STOPPING):
                continue
            mapping = self.devices.resolve(sup.profile.required_devices)
            for cfg, mb in sup.profile.memory_mb.items():
                if mapping.get(cfg):
                    holders.setdefault(mapping[cfg], []).append({"model": sup.model.name, "instance": sup.id,
                                                                 "memory_mb": mb, "state": sup.state.value})
        owners = {s.pid: s.id for s in self.supervisors.values() if s.pid}
        devices = []
        for r in self.device_readings:
            entry = {**r, "models": holders.get(r["name"], [])}
            if r.get("processes"):
                entry["processes"] = [{**p, "model": owners.get(_group_of(p.get("pid")))} for p in r["processes"]]
            devices.append(entry)
        return {"devices": devices, "ts": self.devices.last_ts, "errors": [e.to_dict() for e in self.devices.errors]}
