"""Scheduling between models that compete for the same devices: who waits, who is drained, who loads next.

``program.scheduler`` picks the policy:

- ``"swap-aware"`` (the default) avoids thrashing. A start that needs memory held by busy models waits for them (it
  never refuses at once) while their requests go on; a model stays loaded at least ``min_residency`` seconds, and
  after that an idle one is not evicted the moment it goes idle but once it has sat idle, or the requests waiting
  for the cold model have waited in all, as long as its reload takes (``SwapWait.kept``); requests for a cold
  model share one start, so one load serves all of them; when several cold models wait for the same room, the one
  with the most waiting requests goes first (then the oldest). A busy model past its residency whose waiting
  requests are served is drained (it admits nothing new, what is in flight finishes, then it is evicted) once more
  requests wait for the cold model than it has in flight; aging bounds the rest: after
  ``max_wait / 2`` a start goes ahead of the others in arrival order and drains the models in its way, and at
  ``max_wait`` it gives up with 503.
- ``"fifo"`` is the behaviour before this scheduler: a start evicts idle models at once (least recently used, no
  residency) and fails with 503 (and ``Retry-After``) when the memory it needs is held by busy models.

Each wait, reorder and drain is an event with its reason (kinds ``swap-wait``, ``reorder``, ``drain``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import NoCapacity
from .supervisor import State, Supervisor

POLL = 0.05  # seconds between looks while waiting (a re-plan reads the devices: cheap on loopback and NVML)
PLACING = (State.STOPPED, State.FAILED, State.SLEEPING)  # the states of an instance whose start waits for room


class SwapBoard:
    """The starts now waiting for room (one ``SwapWait`` per waiting request, grouped by instance): the order in
    which competing cold models load. Owned by the Manager."""

    def __init__(self) -> None:
        self.waiting: dict[Supervisor, list[SwapWait]] = {}
        self.held_back: dict[str, int] = {}  # model -> requests held back by ``turn``
        self.told: dict[Supervisor, str] = {}  # what the event stream last heard about a waiting start (once each)

    async def turn(self, group: Any) -> None:
        """Hold a request back while its model is drained for a swap: admitted, it would only queue behind the swap
        and be left with a cold model; held back, it asks for the model's next load once the swap went ahead (and
        counts as demand for it meanwhile). Ends within ``max_wait``: a drain ends when its start goes ahead or
        gives up."""
        name = group.model.name
        if not group.gate.draining:
            return
        self.held_back[name] = self.held_back.get(name, 0) + 1
        try:
            while group.gate.draining:
                await asyncio.sleep(POLL)
        finally:
            self.held_back[name] -= 1
            if not self.held_back[name]:
                del self.held_back[name]

    def join(self, wait: SwapWait) -> None:
        waits = self.waiting.setdefault(wait.sup, [])
        if wait not in waits:
            waits.append(wait)

    def leave(self, wait: SwapWait) -> None:
        waits = self.waiting.get(wait.sup)
        if waits and wait in waits:
            waits.remove(wait)
            if not waits:
                del self.waiting[wait.sup]
                self.told.pop(wait.sup, None)

    def waited(self, sup: Supervisor, within: float) -> float:
        """Request-seconds spent waiting for ``sup``'s start in the last ``within`` seconds: what keeping an idle
        model in its way (idle for ``within``) has cost."""
        now = time.monotonic()
        return sum(min(within, now - w.since) for w in self.waiting.get(sup, ()) if w.since is not None)

    def since(self, sup: Supervisor) -> float:
        """Monotonic time the oldest request waiting for ``sup``'s start began waiting."""
        return min((w.since for w in self.waiting.get(sup, ()) if w.since is not None), default=time.monotonic())

    def demand(self, sup: Supervisor) -> int:
        """Requests a load of ``sup`` would serve: those waiting for its start, queued at its model or held back."""
        return sup.waiting_start + sup.gate.queued + self.held_back.get(sup.model.name, 0)

    def key(self, sup: Supervisor, max_wait: float) -> tuple[float, ...]:
        """Sort key, smallest first: aged starts first (in arrival order), then the model with the most waiting
        requests, then the oldest."""
        since = self.since(sup)
        if time.monotonic() - since >= max_wait / 2:
            return (0.0, since, 0.0)
        return (1.0, -float(self.demand(sup)), since)

    def ahead(self, sup: Supervisor, max_wait: float) -> Supervisor | None:
        """A waiting start of another model on a device ``sup`` needs that should load first, or None."""
        devices = {d for p in sup.model.profiles for d in p.required_devices}
        mine = (self.key(sup, max_wait), sup.id)
        best: tuple[tuple[float, ...], str] | None = None
        first: Supervisor | None = None
        for other in self.waiting:
            if other.model.name == sup.model.name or other.state not in PLACING or not devices & {
                    d for p in other.model.profiles for d in p.required_devices}:
                continue  # the same model, already starting, or on other devices: no competition
            theirs = (self.key(other, max_wait), other.id)
            if theirs < mine and (best is None or theirs < best):
                best, first = theirs, other
        return first


def idle_for(victim: Supervisor) -> float:
    """Seconds since ``victim`` last served a request (or became ready)."""
    return time.time() - max(victim.last_used or 0.0, victim.ready_at or 0.0)


class SwapWait:
    """The waiting of one request for one start (``sup``); ``starter`` is the Manager."""

    def __init__(self, starter: Any, sup: Supervisor):
        self.starter = starter
        self.sup = sup
        self.board: SwapBoard = starter.swaps
        program = starter.config.program
        self.on = program.scheduler == "swap-aware"
        self.max_wait = program.max_wait
        self.since: float | None = None  # monotonic: when this start first had to wait
        self.drained: list[Supervisor] = []

    def residency(self, victim: Supervisor) -> float:
        """Seconds ``victim`` must stay loaded before it may be evicted for another model."""
        own = victim.model.min_residency
        return own if own is not None else self.starter.config.program.min_residency

    def too_fresh(self, victims: list[Supervisor]) -> list[Supervisor]:
        """The victims loaded less than their ``min_residency`` ago (none once aging has begun, none for FIFO)."""
        if not self.on or self.aging:
            return []
        now = time.time()
        return [v for v in victims if v.ready_at is not None and now - v.ready_at < self.residency(v)]

    def reload_s(self, victim: Supervisor) -> float:
        """What evicting ``victim`` by mistake costs: its learned load time (5 s until one was measured)."""
        return self.starter.groups[victim.model.name].load_s or 5.0

    def kept(self, victims: list[Supervisor]) -> list[Supervisor]:
        """The idle victims swap-aware keeps loaded for now: those loaded less than ``min_residency`` ago, and
        those that served a request a moment ago. An idle model may be asked for again at once, and evicting it
        then is how FIFO thrashes; keeping it while requests wait here idles the device. So, past its residency,
        it goes once it has sat idle as long as reloading it takes, or once the requests waiting here have
        waited that long in all while it sat idle (the classic ski-rental rule: the time lost is at most twice
        what the better choice in hindsight would have lost; many waiting requests make it go sooner). None once
        aging has begun, none for FIFO."""
        if not self.on or self.aging:
            return []
        kept = []
        for victim in victims:
            idle, reload = idle_for(victim), self.reload_s(victim)
            if self.too_fresh([victim]) or (idle < reload and self.board.waited(self.sup, idle) < reload):
                kept.append(victim)
        return kept

    def why_blocked(self, victim: Supervisor) -> str:
        """Why ``victim`` still holds the room, for the ``swap-wait`` event."""
        if victim.state != State.READY:
            return victim.state.value
        if victim.busy:
            return "busy"
        loaded = time.time() - (victim.ready_at or 0)
        if self.too_fresh([victim]):
            return f"loaded {loaded:.0f} s ago, min_residency {self.residency(victim):g} s"
        return (f"idle {idle_for(victim):.1f} s, loaded {loaded:.0f} s ago: kept until it has sat idle, or the requests "
                f"waiting here have waited in all, as long as its reload ({self.reload_s(victim):.1f} s)")

    @property
    def waited(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    @property
    def aging(self) -> bool:
        return self.since is not None and self.waited >= self.max_wait / 2

    def _begin(self) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.board.join(self)

    def _give_up(self, why: str) -> None:
        if self.waited >= self.max_wait:
            raise NoCapacity(f"cannot start model {self.sup.id}: waited {self.max_wait:g} s (max_wait) {why}",
                             headers={"Retry-After": "1"})

    def _tell(self, kind: str, about: str, detail: str) -> None:
        """One event per start and reason, however many requests wait for it."""
        if self.board.told.get(self.sup) != about:
            self.board.told[self.sup] = about
            self.starter._on_change(self.sup, kind, detail)

    def ahead(self) -> Supervisor | None:
        """Another waiting start that should load before this one (which then waits: see ``defer``)."""
        self._begin()
        return self.board.ahead(self.sup, self.max_wait)

    async def defer(self, first: Supervisor) -> None:
        """Let ``first`` load before us (it has more requests waiting, or waits longer); give up at ``max_wait``."""
        self._give_up(f"behind {first.id}")
        if self.board.key(first, self.max_wait)[0] == 0.0:
            why = f"it has waited {time.monotonic() - self.board.since(first):.1f} s, past max_wait / 2 (aging)"
        else:
            why = f"{self.board.demand(first)} request(s) wait for it, {self.board.demand(self.sup)} for this one"
        self._tell("reorder", f"behind {first.id}", f"loads after {first.id}: {why}; one load serves all of its "
                   f"requests (this one has waited {self.waited:.1f} s of max_wait {self.max_wait:g} s)")
        await asyncio.sleep(POLL)

    async def wait(self, blocked: list[Supervisor]) -> None:
        """Wait a moment for ``blocked`` (busy, too fresh, still starting or stopping) to make room; drain the ready
        ones once they have served their waiting requests and fewer than ours (``_outweighed``), or all of them
        once aging (one still starting first serves the requests that wait for it); give up at ``max_wait``."""
        self._begin()
        names = ", ".join(v.id for v in blocked)
        self._give_up(f"for {names} to make room")
        if self.aging:
            why = f"it waited {self.waited:.1f} s (max_wait {self.max_wait:g} s)"
            for victim in blocked:
                self._drain(victim, why)
        else:
            for victim in self._outweighed(blocked):
                self._drain(victim, f"{self.board.demand(self.sup)} request(s) wait for it, {victim.id} has served "
                            f"what waited for it ({victim.in_flight} in flight) and is past its min_residency")
            why = ", ".join(f"{v.id} ({self.why_blocked(v)})" for v in blocked)
            self._tell("swap-wait", names, f"waiting for room held by {why}")
        await asyncio.sleep(POLL)

    def _outweighed(self, blocked: list[Supervisor]) -> list[Supervisor]:
        """The busy victims a swap may drain now: loaded at least ``min_residency`` ago, nothing of theirs still
        queued (requests that waited for a loaded model are served before one that forces a swap), and fewer in
        flight than requests wait for this start (later requests for them wait for their next load, grouped)."""
        want = self.board.demand(self.sup)
        return [v for v in blocked if v.state == State.READY and not self.too_fresh([v]) and not v.gate.queued
                and v.in_flight + self.board.held_back.get(v.model.name, 0) < want]

    def _drain(self, victim: Supervisor, why: str) -> None:
        if victim.state == State.READY and victim not in self.drained and not victim.gate.draining:
            victim.gate.drain(True)
            self.drained.append(victim)
            self.starter._on_change(victim, "drain", f"draining for {self.sup.id}: {why}")

    def eviction_reason(self, victim: Supervisor) -> str:
        """Why ``victim`` goes, for the event stream."""
        idle = time.time() - (victim.last_used or time.time())
        return (f"evicted to make room for {self.sup.id} ({self.board.demand(self.sup)} request(s) waiting); "
                f"{victim.id} was idle {idle:.1f} s, the least recently used")

    def started(self) -> None:
        """The start goes ahead: it no longer competes for room."""
        self.board.leave(self)

    def release(self) -> None:
        """The victims are gone (or the start gave up): the models it drained admit requests again (a request for
        an evicted one then asks for its start)."""
        self.board.leave(self)
        for victim in self.drained:
            victim.gate.drain(False)
        self.drained = []
