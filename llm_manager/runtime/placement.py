"""Which hardware profile fits now, and what must be evicted: pure functions, no I/O.

The manager snapshots device readings and the models it runs (together, under its placement lock),
and asks ``plan``. The same function answers the what-if planner (``llm-manager plan``,
``/api/plan/{model}``, the dashboard), so what the planner says is exactly what a start would do, and a
model that already runs is reported as such rather than planned a second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..config.parse import Profile


@dataclass(frozen=True)
class DeviceState:
    """A device as placement sees it, keyed by the config's device name."""

    name: str
    online: bool
    free_mb: int  # free as the device reports it (memory held by loaded models already counted)
    total_mb: int = 0
    offline_reason: str = ""


@dataclass(frozen=True)
class Holding:
    """Memory a model run by this manager holds (ready) or has reserved (starting)."""

    model: str
    memory_mb: Mapping[str, int]
    state: str  # "starting" | "ready" | "stopping"
    busy: bool = False  # requests in flight or queued: never evicted
    last_used: float = 0.0
    profile: str = ""  # the hardware profile it was started with
    holder: str = ""  # the instance holding it ("demo-chat@1"); "" means the model itself (instance 0)
    movable: bool = False  # a what-if: evictable once it is ready (starting) or gone (stopping) and idle

    @property
    def key(self) -> str:
        return self.holder or self.model

    @property
    def reserved_only(self) -> bool:
        """A starting model's memory is not yet visible in the device's reading."""
        return self.state == "starting"

    @property
    def evictable(self) -> bool:
        return (self.state == "ready" or self.movable) and not self.busy


@dataclass(frozen=True)
class DevicePlan:
    name: str
    needed_mb: int
    free_before_mb: int
    free_after_mb: int
    holders: tuple[str, ...] = ()
    online: bool = True


@dataclass(frozen=True)
class Plan:
    model: str
    fits: bool
    profile: str | None = None
    evict: tuple[str, ...] = ()
    reason: str = ""
    devices: tuple[DevicePlan, ...] = field(default_factory=tuple)
    running: str | None = None  # "starting" | "ready" | "stopping" when the model already holds its memory
    # the chosen (else first) profile's memory as the config declares it and as learned (None until measured);
    # ``devices[].needed_mb`` is what placement reserves: the larger of the two
    memory_declared_mb: Mapping[str, int] = field(default_factory=dict)
    memory_measured_mb: Mapping[str, int] | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.model, "fits": self.fits, "profile": self.profile, "evict": list(self.evict),
            "reason": self.reason, "running": self.running, "memory_declared_mb": dict(self.memory_declared_mb),
            "memory_measured_mb": dict(self.memory_measured_mb) if self.memory_measured_mb is not None else None,
            "devices": [
                {"name": d.name, "needed_mb": d.needed_mb, "free_before_mb": d.free_before_mb,
                 "free_after_mb": d.free_after_mb, "holders": list(d.holders), "online": d.online}
                for d in self.devices
            ],
        }


def effective_free(devices: Mapping[str, DeviceState], holdings: Iterable[Holding]) -> dict[str, int]:
    """Free memory per device after subtracting reservations of models still starting."""
    free = {name: d.free_mb for name, d in devices.items()}
    for h in holdings:
        if h.reserved_only:
            for dev, mb in h.memory_mb.items():
                if dev in free:
                    free[dev] -= mb
    return free


def _holders(device: str, holdings: Iterable[Holding]) -> tuple[str, ...]:
    return tuple(f"{h.key} ({h.memory_mb[device]} MB, {'busy' if h.busy else h.state})"
                 for h in holdings if h.memory_mb.get(device, 0) > 0)


def _short(profile: Profile, free: Mapping[str, int]) -> dict[str, int]:
    """MB missing per device for this profile (empty when it fits)."""
    return {d: profile.memory_mb.get(d, 0) - free.get(d, 0)
            for d in profile.required_devices if profile.memory_mb.get(d, 0) > free.get(d, 0)}


def _evictions_for(profile: Profile, free: Mapping[str, int], holdings: Sequence[Holding],
                   model: str) -> list[Holding] | None:
    """Least-recently-used idle models (never another instance of ``model``) whose eviction makes ``profile`` fit,
    or None."""
    free = dict(free)
    chosen: list[Holding] = []
    candidates = sorted((h for h in holdings if h.evictable and h.model != model), key=lambda h: h.last_used)
    for h in candidates:
        short = _short(profile, free)
        if not short:
            break
        if not any(h.memory_mb.get(d, 0) > 0 for d in short):
            continue
        chosen.append(h)
        for dev, mb in h.memory_mb.items():
            if dev in free:
                free[dev] += mb
    if _short(profile, free):
        return None
    # Undo evictions that turned out unnecessary (most recently used first).
    for h in sorted(chosen, key=lambda h: -h.last_used):
        trial = {dev: mb - h.memory_mb.get(dev, 0) for dev, mb in free.items()}
        if not _short(profile, trial):
            chosen.remove(h)
            free = trial
    return chosen


def _device_plans(profile: Profile, devices: Mapping[str, DeviceState], free: Mapping[str, int],
                  holdings: Sequence[Holding], evicted: Sequence[Holding]) -> tuple[DevicePlan, ...]:
    plans = []
    for dev in profile.required_devices:
        need = profile.memory_mb.get(dev, 0)
        before = free.get(dev, 0)
        freed = sum(h.memory_mb.get(dev, 0) for h in evicted)
        state = devices.get(dev)
        plans.append(DevicePlan(dev, need, before, before + freed - need, _holders(dev, holdings),
                                online=bool(state and state.online)))
    return tuple(plans)


def _running_plan(own: Holding, profiles: Sequence[Profile], devices: Mapping[str, DeviceState],
                  holdings: Sequence[Holding]) -> Plan:
    """A model that already runs: where it is, and the free memory counting what it holds itself."""
    others = [h for h in holdings if h.key != own.key]
    free = effective_free(devices, others)
    prof = next((p for p in profiles if p.name == own.profile), None)
    names = list(prof.required_devices) if prof else list(own.memory_mb)
    plans = []
    for dev in names:
        need = own.memory_mb.get(dev, 0)
        # a starting model's memory is not in the reading yet; a ready or stopping one's is
        before = free.get(dev, 0) + (0 if own.reserved_only else need)
        state = devices.get(dev)
        plans.append(DevicePlan(dev, need, before, before - need, _holders(dev, [*others, own]),
                                online=bool(state and state.online)))
    where = f"profile {own.profile}" + (f" on {', '.join(names)}" if names else "")
    reason = (f"already {own.state} with {where}; it holds its memory now, so nothing would be started or "
              "evicted (stop it to see what a fresh start would do)")
    return Plan(own.key, True, own.profile or None, (), reason, tuple(plans), running=own.state)


def plan(model: str, profiles: Sequence[Profile], devices: Mapping[str, DeviceState],
         holdings: Sequence[Holding], holder: str | None = None) -> Plan:
    """Pick the first profile that fits as is; else the first that fits after evicting idle models (LRU).

    ``holder`` names the instance to place ("demo-chat@1"; default: the model, i.e. instance 0). One that is
    itself among ``holdings`` already runs: the plan says so (see ``_running_plan``)."""
    holder = holder or model
    own = next((h for h in holdings if h.key == holder), None)
    if own is not None:
        return _running_plan(own, profiles, devices, holdings)
    free = effective_free(devices, holdings)
    usable = []
    problems = []
    for prof in profiles:
        missing = [d for d in prof.required_devices if d not in devices]
        offline = [d for d in prof.required_devices if d in devices and not devices[d].online]
        if missing:
            problems.append(f"profile {prof.name}: device {', '.join(missing)} not found")
        elif offline:
            reasons = "; ".join(f"{d} offline ({devices[d].offline_reason or 'no reason given'})" for d in offline)
            problems.append(f"profile {prof.name}: {reasons}")
        else:
            usable.append(prof)
    for prof in usable:
        if not _short(prof, free):
            return Plan(holder, True, prof.name, (), f"profile {prof.name} fits",
                        _device_plans(prof, devices, free, holdings, []))
    for prof in usable:
        evict = _evictions_for(prof, free, holdings, model)
        if evict is not None:
            names = tuple(h.key for h in evict)
            return Plan(holder, True, prof.name, names, f"profile {prof.name} fits after evicting {', '.join(names)}",
                        _device_plans(prof, devices, free, holdings, evict))
    for prof in usable:
        short = _short(prof, free)
        parts = [f"{d}: needs {prof.memory_mb.get(d, 0)} MB, {free.get(d, 0)} MB free"
                 + (f", held by {', '.join(_holders(d, holdings))}" if _holders(d, holdings) else "")
                 for d in short]
        problems.append(f"profile {prof.name}: " + "; ".join(parts))
    first = usable[0] if usable else (profiles[0] if profiles else None)
    reason = "no hardware profile fits: " + " | ".join(problems) if problems else "model has no hardware profile"
    devs = _device_plans(first, devices, free, holdings, []) if first else ()
    return Plan(holder, False, None, (), reason, devs)
