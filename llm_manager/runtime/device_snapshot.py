"""The Manager's view of its devices: readings taken together with what its models hold.

Placement must decide on one consistent snapshot: the holdings are taken on the loop right before
the (threaded) device read, and simulated devices report that same snapshot's ledger. The devices
API shows the last readings with the models holding memory on each. Each reading also teaches the
footprint book what ready instances really hold (``footprints.py``); holdings reserve the larger of
the declared and the learned MB.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from .devices import DeviceRegistry
from .footprints import FootprintBook, learn
from .group import ModelGroup
from .placement import Holding
from .supervisor import State, Supervisor

Held = dict[str, list[tuple[int | None, int]]]  # device -> (process group leader, declared MB) of loaded models

# The ledger (MB per device held by loaded models, and by which process) that a device read in progress must report.
_LEDGER: contextvars.ContextVar[tuple[dict[str, int], Held] | None] = contextvars.ContextVar("llm_manager_ledger",
                                                                                            default=None)


def _group_of(pid: int | None) -> int | None:
    """The process group of a pid (model processes lead their own group), or None."""
    try:
        return os.getpgid(pid) if pid else None
    except (ProcessLookupError, PermissionError):
        return None


class DeviceSnapshotMixin:
    """Mixed into Manager; relies on its ``supervisors``, ``devices``, ``device_readings`` and ``device_history``."""

    supervisors: dict[str, Supervisor]
    groups: dict[str, ModelGroup]
    devices: DeviceRegistry
    device_readings: list[dict[str, Any]]
    device_history: deque[dict[str, Any]]
    footprints: FootprintBook
    _on_change: Callable[..., None]

    def _ledgers(self) -> tuple[dict[str, int], Held]:
        """During ``read_devices``: the snapshot that read was taken with (a context variable: the worker thread
        runs in a copy of the caller's context), never live state; else a fresh one."""
        ledgers = _LEDGER.get()
        if ledgers is None:
            _holdings, ledger, held = self._snapshot()
            return ledger, held
        return ledgers

    def _ledger(self, device_name: str) -> int:
        """MB that loaded (ready or stopping) models declare on a device (for device plugins that take only this)."""
        return self._ledgers()[0].get(device_name, 0)

    def _held(self, device_name: str) -> list[tuple[int | None, int]]:
        """The loaded models on a device, each as (its process group, declared MB): simulated GPUs report what each
        really holds (its registered footprint, else the declared MB) as used, and per process."""
        return self._ledgers()[1].get(device_name, [])

    def _snapshot(self) -> tuple[list[Holding], dict[str, int], Held]:
        """What our models hold now (for placement: the larger of declared and learned MB), the declared MB per
        device that loaded ones hold (the ledger) and which process holds it."""
        holdings: list[Holding] = []
        ledger: dict[str, int] = {}
        held: Held = {}
        for sup in self.supervisors.values():
            if sup.profile is None or sup.state not in (State.STARTING, State.READY, State.STOPPING):
                continue
            need = self.footprints.need(sup.model.name, sup.profile)
            holdings.append(Holding(sup.model.name, need, sup.state.value, sup.busy or self._handed_over(sup),
                                    sup.last_used, sup.profile.name, sup.id))
            if sup.state != State.STARTING:
                mapping = self.devices.resolve(sup.profile.required_devices)
                for cfg, mb in sup.profile.memory_mb.items():
                    if mapping.get(cfg):
                        ledger[mapping[cfg]] = ledger.get(mapping[cfg], 0) + mb
                        held.setdefault(mapping[cfg], []).append((sup.pid, mb))
        return holdings, ledger, held

    def _handed_over(self, sup: Supervisor) -> bool:
        """Its model's queue has handed a slot to a request that has not reached an instance yet (between a release
        and the waiter running, no instance counts it in flight): busy too, never evicted in that instant."""
        group = self.groups.get(sup.model.name)
        return group is not None and group.gate.in_flight > sum(t.in_flight for t in group.targets())

    def _learn_footprints(self, readings: list[dict[str, Any]]) -> None:
        """What each ready instance really holds, from this reading's per-process memory (``footprints.learn``)."""
        for sup in self.supervisors.values():
            if sup.state == State.READY and sup.pid:
                learn(self.footprints, sup, readings, self.devices.resolve, self._on_change)

    async def read_devices(self) -> tuple[list[dict[str, Any]], list[Holding]]:
        """Device readings and model holdings as one snapshot.

        The holdings are taken on the loop before the (threaded) read and the read reports that same
        snapshot's ledger, so a model that becomes ready meanwhile is counted exactly once (as a
        reservation) instead of nowhere. On real GPUs a model loading during the read may be counted
        twice, in the reading and as a reservation: that errs on the safe side."""
        holdings, ledger, held = self._snapshot()
        ctx = contextvars.copy_context()
        ctx.run(_LEDGER.set, (ledger, held))
        readings = await asyncio.get_running_loop().run_in_executor(None, ctx.run, self.devices.read)
        self.device_readings = readings
        self.device_history.append({"ts": self.devices.last_ts, "devices": [
            {k: r.get(k) for k in ("name", "online", "used_memory_mb", "total_memory_mb", "usage_percentage",
                                   "temperature_celsius")} for r in readings]})
        self._learn_footprints(readings)
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
