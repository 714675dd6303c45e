"""How many instances of each model run: scale up under a queue, keep ``min_instances``, stop idle ones.

One loop on the event loop (``Autoscaler.run``) looks at every model a few times a second:
- **up**: requests queued longer than ``scale_up_after`` (or fewer live instances than ``min_instances``) start
  one more instance, one start at a time per model, placed like any start (it may evict idle models, never a busy
  one); a start that cannot be placed is reported once per reason and retried after ``RETRY_BLOCKED`` seconds;
- **down**: a ready instance idle for the model's ttl (or a request's ``keep_alive``) stops, while more than
  ``min_instances`` run; the highest-numbered instances go first;
- **upstreams**: remote upstreams due a health check are probed (``runtime.remote``).
Each decision is an event on the bus, with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Protocol

import httpx

from ..errors import LLMManagerError
from .bus import EventBus
from .group import ModelGroup
from .supervisor import State, Supervisor

log = logging.getLogger(__name__)

TICK = 0.1  # seconds between looks
RETRY_BLOCKED = 2.0  # seconds before a scale-up that could not be placed is tried again


class Scaled(Protocol):
    """What the autoscaler drives (the Manager)."""

    groups: Mapping[str, ModelGroup]
    bus: EventBus

    @property
    def running(self) -> bool: ...

    def idle_limit(self, name: str) -> float | None: ...

    def keep_alive(self, name: str, seconds: float | None) -> None: ...

    def has_keep_alive(self, name: str) -> bool: ...

    async def ready_instance(self, sup: Supervisor) -> None: ...


class Autoscaler:
    def __init__(self, manager: Scaled):
        self.manager = manager
        self._blocked: dict[str, str] = {}  # model -> the reason its last scale-up failed (reported once)
        self._retry_at: dict[str, float] = {}
        self._starting: set[str] = set()  # instance ids this loop is starting
        self._probing: set[str] = set()
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        while self.manager.running:
            await asyncio.sleep(TICK)
            now, mono = time.time(), time.monotonic()
            for group in list(self.manager.groups.values()):
                try:
                    self._idle(group, now)
                    self._scale_up(group, mono)
                    self._probe(group, mono)
                except Exception:  # one model's trouble must not stop the loop for the others
                    log.exception("autoscaling %s failed", group.model.name)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, group: ModelGroup, kind: str, detail: str, instance: str = "") -> None:
        self.manager.bus.publish("event", {"kind": kind, "model": group.model.name, "instance": instance,
                                           "detail": detail, "ts": time.time()})

    # ------------------------------------------------------------------ up

    def _scale_up(self, group: ModelGroup, mono: float) -> None:
        model = group.model
        live = group.live()
        if not group.instances or any(s.state == State.STARTING for s in live) or mono < self._retry_at.get(
                model.name, 0.0):
            return
        gate = group.gate
        if len(live) < model.min_instances and not group.stopped_by_operator:
            reason = f"min_instances {model.min_instances}: {len(live)} running"
        elif gate.queued and len(live) < model.max_instances and gate.oldest_wait() >= model.scale_up_after:
            reason = (f"{gate.queued} request(s) queued, the oldest for {gate.oldest_wait():.1f} s "
                      f"(scale_up_after {model.scale_up_after:g} s)")
        else:
            if not gate.queued:
                self._blocked.pop(model.name, None)
            return
        sup = group.next_to_start()
        if sup is None or sup.id in self._starting or (sup.state == State.FAILED and sup.retry_at > mono):
            return
        self._starting.add(sup.id)
        self._spawn(self._start(group, sup, reason))

    async def _start(self, group: ModelGroup, sup: Supervisor, reason: str) -> None:
        self._event(group, "scale-up", f"starting instance {sup.instance}: {reason}", sup.id)
        try:
            await self.manager.ready_instance(sup)
            self._blocked.pop(group.model.name, None)
        except LLMManagerError as exc:
            self._retry_at[group.model.name] = time.monotonic() + RETRY_BLOCKED
            if self._blocked.get(group.model.name) != exc.message:
                self._blocked[group.model.name] = exc.message
                self._event(group, "scale-blocked", f"could not add instance {sup.instance}: {exc.message}", sup.id)
        finally:
            self._starting.discard(sup.id)

    # ------------------------------------------------------------------ down

    def _idle(self, group: ModelGroup, now: float) -> None:
        manager, model = self.manager, group.model
        for sup in group.instances:
            if sup.pending_restart and sup.state == State.READY and not sup.busy:
                sup.pending_restart = False  # its config changed: the next request starts the new one
                self._spawn(sup.stop("config changed; restarts on the next request"))
        ready = [s for s in group.instances if s.state == State.READY]
        if not ready:
            manager.keep_alive(model.name, None)  # a keep_alive lasts one load
            return
        limit = manager.idle_limit(model.name)
        if limit is None:
            return
        live = len(group.live())
        asleep = model.unload == "sleep"  # the process stays: min_instances still holds
        for sup in sorted(ready, key=lambda s: -s.instance):
            if live <= model.min_instances and not asleep:
                return
            if sup.busy or now - sup.last_used < limit:
                continue
            why = "keep_alive" if manager.has_keep_alive(model.name) else "ttl"
            reason = f"idle for {now - sup.last_used:.0f} s ({why} {limit:g} s)"
            if asleep:
                self._spawn(sup.sleep(reason))
                continue
            live -= 1
            if live > 0:
                self._event(group, "scale-down", f"stopping instance {sup.instance}: {reason}", sup.id)
            self._spawn(sup.stop(reason))

    # ------------------------------------------------------------------ upstreams

    def _probe(self, group: ModelGroup, mono: float) -> None:
        for remote in group.remotes:
            key = f"{group.model.name}/{remote.id}"
            if key in self._probing or not remote.probe_due(mono):
                continue
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
            self._probing.add(key)

            async def probe(remote=remote, key=key) -> None:  # type: ignore[no-untyped-def]
                try:
                    await remote.probe(self._client)  # type: ignore[arg-type]
                finally:
                    self._probing.discard(key)

            self._spawn(probe())

