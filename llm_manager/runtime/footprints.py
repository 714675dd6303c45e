"""Learned memory footprints: what a model really holds on each device, per model and profile.

A config's ``memory_mb`` is a guess; the device knows better. After an instance becomes ready (and on each device
reading while it is), the memory its processes hold is read from the devices' per-process view (NVML's compute
processes; the simulated GPUs' driver table) and matched to the instance by process group (a model process leads its
own group, so a launcher script's child counts). Placement then reserves the larger of the declared and the learned
MB, so a model that holds more than it says no longer overcommits a device. The learned values survive a restart in
``<data_dir>/footprints.json`` (the runtime's own file, as the reaper's ``children.json``: no database needed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config.parse import ModelConfig, Profile

log = logging.getLogger(__name__)

WARN_OVER = 0.10  # a measured footprint this much over the declared one is worth an event
CHANGE = 0.02  # smaller changes are noise: neither saved nor announced


def _group_of(pid: Any) -> int | None:
    try:
        return os.getpgid(int(pid)) if pid else None
    except (ProcessLookupError, PermissionError, ValueError, TypeError):
        return None


def measure(leader: int, devices: Mapping[str, str | None], readings: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """MB the process group ``leader`` holds per config device name (``devices``: config name -> device name), from
    the readings' ``processes``. Devices that list no process of the group are left out (unknown, not 0: a device
    without per-process memory, or a pid namespace that hides ours)."""
    by_name = {r.get("name"): r for r in readings}
    out: dict[str, int] = {}
    for cfg, dev in devices.items():
        reading = by_name.get(dev) if dev else None
        if not reading or not reading.get("online"):
            continue
        mine = [p.get("used_memory_mb") for p in reading.get("processes") or () if _group_of(p.get("pid")) == leader]
        known = [int(mb) for mb in mine if mb is not None]
        if known:
            out[cfg] = sum(known)
    return out


def over_declared(declared: Mapping[str, int], measured: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Devices where the measured MB exceeds the declared MB by more than ``WARN_OVER``: {device: (measured,
    declared)}."""
    return {d: (mb, declared.get(d, 0)) for d, mb in measured.items() if mb > declared.get(d, 0) * (1 + WARN_OVER)}


class FootprintBook:
    """The learned footprints, ``(model, profile) -> {config device name: MB}``; ``path`` None keeps them in memory."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.learned: dict[tuple[str, str], dict[str, int]] = {}
        self.load()

    def load(self) -> None:
        """Read the file; a missing or damaged one is an empty book (learning starts over)."""
        if self.path is None or not self.path.exists():
            return
        try:
            rows = json.loads(self.path.read_text())
            self.learned = {(r["model"], r["profile"]): {str(d): int(mb) for d, mb in r["memory_mb"].items()}
                            for r in rows}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring learned footprints in %s: %s", self.path, exc)

    def _save(self) -> None:
        if self.path is None:
            return
        rows = [{"model": m, "profile": p, "memory_mb": mem} for (m, p), mem in sorted(self.learned.items())]
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(rows, indent=1))
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only data dir: learning still works for this run
            log.warning("cannot save learned footprints to %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def get(self, model: str, profile: str) -> dict[str, int] | None:
        return self.learned.get((model, profile))

    def record(self, model: str, profile: str, measured: Mapping[str, int]) -> bool:
        """Remember a measurement; True when it is new or changed by more than ``CHANGE`` on some device."""
        old = self.learned.get((model, profile)) or {}
        new = {**old, **measured}
        if old and all(abs(new[d] - old.get(d, 0)) <= CHANGE * max(1, old.get(d, 0)) for d in new):
            return False
        self.learned[(model, profile)] = new
        self._save()
        return True

    def need(self, model: str, profile: Profile) -> dict[str, int]:
        """What placement reserves for ``profile``: the larger of the declared and the learned MB per device."""
        learned = self.get(model, profile.name) or {}
        return {d: max(int(mb), learned.get(d, 0)) for d, mb in {**learned, **profile.memory_mb}.items()}

    def effective(self, model: str, profile: Profile) -> Profile:
        """``profile`` with ``need`` as its memory (what a plan places)."""
        need = self.need(model, profile)
        return profile if need == dict(profile.memory_mb) else dataclasses.replace(profile, memory_mb=need)

    def fields(self, model: ModelConfig, profile: str | None) -> dict[str, Any]:
        """``memory_declared_mb`` and ``memory_measured_mb`` (null until known) of ``profile`` (the running one,
        else the first), and the same for every profile (``memory_profiles``), for /api/models-info."""
        by_profile = {p.name: {"memory_declared_mb": dict(p.memory_mb), "memory_measured_mb": self.get(model.name,
                                                                                                     p.name)}
                      for p in model.profiles}
        shown = profile if profile in by_profile else (model.profiles[0].name if model.profiles else None)
        top = by_profile.get(shown) if shown else None
        return {"memory_profile": shown,
                "memory_declared_mb": top["memory_declared_mb"] if top else {},
                "memory_measured_mb": top["memory_measured_mb"] if top else None,
                "memory_profiles": by_profile}


def learn(book: FootprintBook, sup: Any, readings: list[dict[str, Any]],
          resolve: Callable[[Iterable[str]], dict[str, str | None]],
          publish: Callable[[Any, str, str, dict[str, Any]], None]) -> None:
    """Measure one ready instance on ``readings`` and record it; a new or changed footprint is an event (kind
    ``footprint``), a warning when it exceeds the declared MB by more than 10 %."""
    profile, leader = sup.profile, sup.pid
    if profile is None or not leader:
        return
    measured = measure(leader, resolve(profile.required_devices), readings)
    if not measured or not book.record(sup.model.name, profile.name, measured):
        return
    over = over_declared(profile.memory_mb, measured)
    parts = ", ".join(f"{d} {mb} MB (declared {profile.memory_mb.get(d, 0)} MB)" for d, mb in sorted(measured.items()))
    if over:
        worst = ", ".join(f"{d} +{100.0 * (mb - dec) / max(1, dec):.0f} %" for d, (mb, dec) in sorted(over.items()))
        detail = (f"profile {profile.name} holds more than declared: {parts}; {worst} over memory_mb, so placement "
                  f"reserves the measured MB from now on")
    else:
        detail = f"profile {profile.name} measured: {parts}"
    publish(sup, "footprint", detail, {"profile": profile.name, "memory": dict(measured),
                                       "declared": dict(profile.memory_mb), "over": bool(over)})
