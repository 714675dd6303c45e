"""Starting one instance where it fits: the plan (under the placement lock), the evictions, the launch.

Mixed into the Manager, which owns the groups, the placement lock and the device snapshot; concurrent requests
for a cold instance share one start, and what the planner shows is exactly what a start would do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from ..config.parse import Profile
from ..errors import NoCapacity, StartFailed
from .device_snapshot import DeviceSnapshotMixin
from .group import ModelGroup
from .placement import Plan, plan
from .router import Router
from .supervisor import State, Supervisor
from .swapping import SwapWait


class InstanceStarter(DeviceSnapshotMixin):
    """Relies on the Manager's ``groups``, ``router``, ``_placement_lock`` and ``_on_change``."""

    groups: dict[str, ModelGroup]
    router: Router
    _placement_lock: asyncio.Lock
    _on_change: Callable[..., None]

    async def plan(self, name: str, more: bool = False) -> Plan:
        """What starting ``name`` would do now: the profile, the evictions, or why it cannot fit. ``more``: what
        one more instance would do (the next instance not running).

        Taken under the placement lock, as a start would, so it never sees a start half-placed."""
        group = self.groups[self.router.resolve(name).name]
        if not group.instances:
            return Plan(group.model.name, False, reason=f"model {group.model.name} is served by upstreams only; "
                        "it has no local instance to place")
        sup = group.next_to_start() if more else group.instances[0]
        if sup is None:
            return Plan(group.model.name, False, reason=f"all {len(group.instances)} instances of "
                        f"{group.model.name} run (max_instances {group.model.max_instances})")
        async with self._placement_lock:
            return await self._plan_locked(sup)

    async def _plan_locked(self, sup: Supervisor, only: Profile | None = None, patient: bool = False) -> Plan:
        """Plan one instance on one snapshot of device readings and holdings; the caller holds the placement lock.
        An instance beyond the first prefers profiles on devices its model's other instances do not use."""
        model = sup.model
        readings, holdings = await self.read_devices()
        names = {d for p in model.profiles for d in p.required_devices}
        view = self.devices.placement_view(names, readings)
        used = {d for h in holdings if h.model == model.name and h.key != sup.id
                for d, mb in h.memory_mb.items() if mb > 0}
        profiles = [only] if only else sorted(model.profiles, key=lambda p: bool(used & set(p.required_devices)))
        if patient:  # what would fit once the models serving (or starting, or stopping) now were idle
            holdings = [dataclasses.replace(h, busy=False, movable=True) for h in holdings]
        # placement reserves the larger of the declared and the learned memory (footprints.py)
        p = plan(model.name, [self.footprints.effective(model.name, pr) for pr in profiles], view, holdings, sup.id)
        shown = next((pr for pr in profiles if pr.name == p.profile), profiles[0] if profiles else None)
        if shown is None:
            return p
        return dataclasses.replace(p, memory_declared_mb=dict(shown.memory_mb),
                                   memory_measured_mb=self.footprints.get(model.name, shown.name))

    async def _ensure_ready(self, sup: Supervisor) -> None:
        """Start the instance if needed; concurrent callers share one start. Raises 503-type errors.

        Swap-aware (``program.scheduler``, the default; ``swapping.py``): a start that needs memory held by busy
        models, or by models loaded less than ``min_residency`` ago, waits for them while their requests go on; the
        cold model with the most waiting requests loads first; busy models are drained once outweighed, or after
        half of ``max_wait``; at ``max_wait`` it gives up with 503. FIFO: evict idle models at once, 503 when the
        memory is held by busy ones."""
        swap = SwapWait(self, sup)
        try:
            while True:
                if sup.state == State.READY:
                    return
                if sup.state == State.STARTING:
                    try:
                        await sup.wait_ready()
                    except StartFailed:
                        raise
                    except Exception as exc:
                        raise StartFailed(sup.last_error or str(exc)) from None
                    if sup.state != State.READY:
                        raise StartFailed(sup.last_error or f"model {sup.id} failed to start")
                    continue
                if sup.state == State.STOPPING:
                    await sup.wait_stopped()
                    continue
                waking = sup.state == State.SLEEPING  # its process keeps its profile: only those devices will do
                if not waking:
                    sup.check_backoff()
                blocked: list[Supervisor] = []  # models in the way that must first become idle or old enough
                first: Supervisor | None = None  # another cold model that loads before this one
                async with self._placement_lock:
                    if sup.state not in ((State.SLEEPING,) if waking else (State.STOPPED, State.FAILED)):
                        continue
                    only = sup.profile if waking else None
                    p = await self._plan_locked(sup, only)
                    if not p.fits:
                        patient = await self._plan_locked(sup, only, patient=True) if swap.on else None
                        if patient is None or not patient.fits or not patient.evict:
                            raise NoCapacity(f"cannot start model {sup.id}: {p.reason}", extra={"plan": p.to_dict()},
                                             headers={"Retry-After": str(self.groups[sup.model.name].retry_after())})
                        first = swap.ahead()
                        blocked = [self.supervisors[v] for v in patient.evict]  # busy now: wait for them
                    else:
                        victims = [self.supervisors[v] for v in p.evict]
                        if any(v.busy or self._handed_over(v) or v.state != State.READY for v in victims):
                            continue  # a victim got busy meanwhile: plan again
                        first = swap.ahead() if victims and swap.on else None  # does another cold model go first?
                        blocked = swap.kept(victims) if first is None else []
                        if first is None and not blocked:
                            swap.started()
                            for victim in victims:
                                reason = swap.eviction_reason(victim)
                                self._on_change(victim, "evict", reason)
                                await self.unload(victim, reason)
                            swap.release()  # the victims are gone: their requests may ask for them again
                            if waking:
                                task = sup.begin_wake()
                            else:
                                task = sup.begin_start(next(pr for pr in sup.model.profiles if pr.name == p.profile))
                if first is not None:
                    await swap.defer(first)
                    continue
                if blocked:
                    await swap.wait(blocked)
                    continue
                try:
                    await asyncio.shield(task)
                except StartFailed:
                    raise
                except asyncio.CancelledError:
                    if task.cancelled() or task.done():
                        raise StartFailed(sup.last_error or f"start of {sup.id} was cancelled") from None
                    raise
        finally:
            swap.release()

    @staticmethod
    async def unload(sup: Supervisor, reason: str) -> None:
        """Free an instance's device memory: sleep (``unload: "sleep"``: the process stays) or stop."""
        await (sup.sleep(reason) if sup.model.unload == "sleep" else sup.stop(reason))

    async def ready_instance(self, sup: Supervisor) -> None:
        """Start one instance (unless it runs) and wait until it is ready: ``_ensure_ready``, counted as a waiter meanwhile (a model someone waits for is busy, never idled out)."""
        sup.waiting_start += 1
        try:
            await self._ensure_ready(sup)
        finally:
            sup.waiting_start -= 1

