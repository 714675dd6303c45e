"""Swap-aware waiting: a start that needs memory other models hold waits instead of thrashing.

``program.scheduler: "swap-aware"`` (the default). Requests for loaded models keep being served while a start that
would evict them waits; a model stays loaded at least ``min_residency`` seconds; and no start waits longer than
``max_wait``: after half of it the models in the way are drained (they admit nothing new, what is in flight
finishes, then they are evicted), at ``max_wait`` the start gives up with 503. Requests for the same cold model
share one start, so one load serves all of them. ``"fifo"``: evict at once, or fail when the holders are busy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import NoCapacity
from .supervisor import Supervisor

POLL = 0.05  # seconds between looks while waiting (a re-plan reads the devices: cheap on loopback and NVML)


class SwapWait:
    """The waiting of one start (``sup``) for memory; ``starter`` is the Manager."""

    def __init__(self, starter: Any, sup: Supervisor):
        self.starter = starter
        self.sup = sup
        program = starter.config.program
        self.on = program.scheduler == "swap-aware"
        self.max_wait = program.max_wait
        self.since: float | None = None  # monotonic: when this start first had to wait
        self.drained: list[Supervisor] = []
        self._told = ""

    def residency(self, victim: Supervisor) -> float:
        """Seconds ``victim`` must stay loaded before it may be evicted for another model."""
        own = victim.model.min_residency
        return own if own is not None else self.starter.config.program.min_residency

    def too_fresh(self, victims: list[Supervisor]) -> list[Supervisor]:
        """The victims loaded less than their ``min_residency`` ago (none once aging has begun)."""
        if not self.on or self.aging:
            return []
        now = time.time()
        return [v for v in victims if v.ready_at is not None and now - v.ready_at < self.residency(v)]

    @property
    def waited(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    @property
    def aging(self) -> bool:
        return self.since is not None and self.waited >= self.max_wait / 2

    async def wait(self, blocked: list[Supervisor]) -> None:
        """Wait a moment for ``blocked`` (busy, or too fresh) to make room; drain them once aging; give up at
        ``max_wait``."""
        if self.since is None:
            self.since = time.monotonic()
        names = ", ".join(v.id for v in blocked)
        if self.waited >= self.max_wait:
            raise NoCapacity(f"cannot start model {self.sup.id}: waited {self.max_wait:g} s (max_wait) for {names} "
                             "to make room", headers={"Retry-After": "1"})
        if self.aging:
            for victim in blocked:
                if victim not in self.drained and not victim.gate.draining:
                    victim.gate.drain(True)
                    self.drained.append(victim)
                    self.starter._on_change(victim, "drain", f"draining for {self.sup.id}: it waited "
                                            f"{self.waited:.1f} s (max_wait {self.max_wait:g} s)")
        elif self._told != names:
            self._told = names
            why = ", ".join(f"{v.id} ({'busy' if v.busy else 'loaded %.0f s ago' % (time.time() - (v.ready_at or 0))})"
                            for v in blocked)
            self.starter._on_change(self.sup, "swap-wait", f"waiting for room held by {why}")
        await asyncio.sleep(POLL)

    def release(self) -> None:
        """The start went ahead or gave up: the models it drained admit requests again."""
        for victim in self.drained:
            victim.gate.drain(False)
        self.drained = []
