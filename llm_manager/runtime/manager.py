"""Manager: the one object the HTTP handlers, the dashboard and notebooks drive.

It owns the config, the devices, one Supervisor per model, placement, the event bus and the usage
sinks. Everything here runs on the event loop; blocking work (device reads) goes to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from .. import __version__
from ..accounting.live import LiveUsage
from ..accounting.record import UsageRecord
from ..config.parse import Config, ModelConfig
from ..errors import NotFound, Unavailable
from ..plugin_loader import load_plugins
from .bus import EventBus
from .devices import DeviceRegistry
from .footprints import FootprintBook
from .group import ModelGroup, Target
from .hotreload import ConfigWatcher
from .idling import IdleLimits
from .reaper import Reaper
from .remote import Remote
from .router import Router
from .scaling import Autoscaler
from .starter import InstanceStarter
from .supervisor import State, Supervisor
from .swapping import SwapBoard

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    return Path(os.environ.get("LLM_MANAGER_DATA_DIR") or Path.cwd() / ".llm-manager")


class Manager(InstanceStarter, IdleLimits):
    """Drives models, devices and requests; starts instances where they fit (InstanceStarter, on the device
    snapshots of DeviceSnapshotMixin). Usage, cost and keys are ``accounting.Accounting``'s, attached through the
    hooks."""

    def __init__(self, config: Config, data_dir: Path | str | None = None):
        self.config = config
        self.data_dir = Path(data_dir or config.program.data_dir or default_data_dir())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(config.program.log_dir) if config.program.log_dir else self.data_dir / "logs"
        self.bus = EventBus()
        self.reaper = Reaper(self.data_dir / "children.json")
        self.footprints = FootprintBook(self.data_dir / "footprints.json")  # learned memory, kept across restarts
        self.devices = DeviceRegistry(config.program, self._ledger, self._held)
        self.interfaces: dict[str, Any] = {}
        self.plugin_errors: list[dict] = []
        self.router = Router(config.models)
        self.groups: dict[str, ModelGroup] = {}  # model name -> its instances and upstreams
        self.supervisors: dict[str, Supervisor] = {}  # every instance by id (``_index``)
        self.usage = LiveUsage()
        self.usage_sinks: list[Callable[[UsageRecord], None]] = []
        self.started_at = time.time()
        self._placement_lock = asyncio.Lock()
        self.swaps = SwapBoard()  # starts waiting for room: which cold model loads next (swapping.py)
        self._tasks: list[asyncio.Task] = []
        self.device_readings: list[dict[str, Any]] = []
        self.device_history: deque[dict[str, Any]] = deque(maxlen=3600)  # bounded rolling history for charts
        self.events: list[dict[str, Any]] = []  # recent model events, bounded
        self._running = False
        self.bus.subscribe("event", self._remember_event)
        self.closers: list[Callable[[], Any]] = []  # blocking close functions run at shutdown, off the loop
        self.listen_port: int | None = None  # the port the HTTP server actually bound (set by the server)
        self.config_hooks: list[Callable[[Config], None]] = []  # called after a config reload
        self._keep_alive: dict[str, float] = {}  # model -> seconds a request asked it to stay loaded (this load)
        self.watcher = ConfigWatcher(self)
        self.scaler = Autoscaler(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reap leftovers, load plugins, discover devices, start loops and auto_start models."""
        reaped = self.reaper.start()
        if reaped:
            log.warning("reaped %d model process group(s) left by a previous manager: %s", len(reaped), reaped)
        self._load_interfaces()
        await asyncio.get_running_loop().run_in_executor(None, self.devices.load)
        for model in self.config.models.values():
            self._add_group(model)
        await self.sample_devices()
        self._running = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._monitor_loop()),
                       loop.create_task(self._throughput_loop()), loop.create_task(self.watcher.watch()),
                       loop.create_task(self.scaler.run())]
        for model in self.config.models.values():
            if model.auto_start and model.local:
                loop.create_task(self._auto_start(model.name))

    async def _auto_start(self, name: str) -> None:
        try:
            await self.start_model(name)
        except Exception as exc:  # reported in the model's state; the manager keeps serving
            log.warning("auto_start of %s failed: %s", name, exc)
        # min_instances beyond the first: the autoscaler keeps them

    async def shutdown(self) -> None:
        """Stop every model (SIGTERM, then SIGKILL of its group) and release the guardian."""
        self._running = False
        for t in self._tasks:
            t.cancel()
        await self.scaler.close()
        await asyncio.gather(*(s.stop("manager shutting down") for s in self.supervisors.values()),
                             return_exceptions=True)
        for sup in self.supervisors.values():
            sup.log.close()
        loop = asyncio.get_running_loop()
        for close in self.closers:
            try:
                await loop.run_in_executor(None, close)
            except Exception:
                log.exception("closing %s failed", close)
        self.reaper.close()

    @property
    def running(self) -> bool:
        return self._running

    async def apply_config(self, new: Config) -> dict[str, list[str]]:
        """Swap in a validated config: new models appear, removed ones stop, changed ones take their new limits at
        once and restart once idle; devices and interface plugins are re-read. Returns what was added, removed,
        changed."""
        old = self.config
        added = [n for n in new.models if n not in old.models]
        removed = [n for n in old.models if n not in new.models]
        changed = [n for n in new.models if n in old.models and new.models[n] != old.models[n]]
        self.config = new
        self.router = Router(new.models)
        gone: list[Supervisor] = []
        for name in removed:
            gone += self.groups.pop(name).instances
        for group in self.groups.values():
            gone += group.take_config(new, new.models[group.model.name])
        for name in added:
            self._add_group(new.models[name])
        self._index()
        for sup in gone:
            await sup.stop("removed from the config")
            sup.log.close()
        if new.program != old.program:
            self.devices.program = new.program
            await asyncio.get_running_loop().run_in_executor(None, self.devices.load)
            await self.sample_devices()
        self._load_interfaces()
        for hook in self.config_hooks:
            hook(new)
        summary = {"added": added, "removed": removed, "changed": changed}
        detail = ", ".join(f"{k} {v}" for k, v in summary.items() if v) or "no model changes"
        self.bus.publish("event", {"kind": "config", "model": "", "ts": time.time(),
                                   "detail": f"config reloaded: {detail}"})
        for name in added:
            if new.models[name].auto_start:
                asyncio.ensure_future(self._auto_start(name))
        return summary

    async def reload_plugins(self) -> None:
        """Re-read the device and interface plugin files (after they changed on disk)."""
        await asyncio.get_running_loop().run_in_executor(None, self.devices.load)
        self._load_interfaces()
        await self.sample_devices()
        self.bus.publish("event", {"kind": "plugins", "model": "", "ts": time.time(),
                                   "detail": f"plugins reloaded; {len(self.plugin_errors)} errors"})

    def _load_interfaces(self) -> None:
        loaded = load_plugins("interfaces", "InterfacePlugin", self.config.program.interface_plugin_dir or None)
        interfaces = {}
        for cls in loaded.classes:
            try:
                inst = cls(self)
            except TypeError:
                inst = cls()
            interfaces[inst.interface_name] = inst
        self.interfaces = interfaces
        self.plugin_errors = [e.to_dict() for e in loaded.errors]

    def _add_group(self, model: ModelConfig) -> None:
        self.groups[model.name] = ModelGroup(model, self.config, self.log_dir, self.bus, self.reaper,
                                             self._on_change, self._on_remote)
        self._index()

    def _index(self) -> None:
        """Rebuild ``supervisors``: every instance of every model by id (instance 0's id is the model's name)."""
        self.supervisors = {s.id: s for g in self.groups.values() for s in g.instances}

    def _on_change(self, sup: Supervisor, kind: str, detail: str, extra: dict[str, Any] | None = None) -> None:
        group = self.groups.get(sup.model.name)
        if group is not None:
            group.refresh()  # a ready instance adds its slots to the model's queue, a lost one takes them away
        where = f"instance {sup.instance}: " if sup.instance else ""
        event = {"kind": kind, "model": sup.model.name, "instance": sup.id, "detail": where + detail,
                 "ts": time.time(), **(extra or {})}
        if kind in ("ready", "cold-start"):
            event["phases"] = dict(sup.start_phases)
        if kind == "ready" and group is not None:
            group.learn_load(sum(sup.start_phases.values()))  # its footprint: learned on the next device reading
        self.bus.publish("event", event)
        self.bus.publish("model", group.info() if group is not None else sup.info())

    def _on_remote(self, remote: Remote, kind: str, detail: str) -> None:
        group = self.groups.get(remote.model)
        if group is not None:
            group.refresh()
            self.bus.publish("model", group.info())
        self.bus.publish("event", {"kind": kind, "model": remote.model, "instance": remote.id, "detail": detail,
                                   "ts": time.time()})

    def _remember_event(self, _topic: str, event: dict[str, Any]) -> None:
        self.events.append(event)
        del self.events[:-500]

    async def _serving(self, group: ModelGroup) -> bool:
        """Make sure the model has a usable target: wait for an instance already starting, else start one.
        True when it had to wait (a cold start)."""
        if group.usable():
            return False
        starting = next((s for s in group.instances if s.state == State.STARTING), None)
        sup = starting or group.next_to_start()
        if sup is None:
            if not group.instances:
                cooling = "; ".join(f"{r.id} cooling for {r.cooling_s():.0f} s ({r.last_error})" for r in group.remotes)
                wait = min((r.cooling_s() for r in group.remotes), default=1.0)
                raise Unavailable(f"model {group.model.name}: every upstream is down: {cooling}",
                                  headers={"Retry-After": str(max(1, int(wait + 0.999)))})
            raise Unavailable(f"model {group.model.name}: no instance is ready",
                              headers={"Retry-After": str(group.retry_after())})
        await self.ready_instance(sup)
        return True

    @contextlib.asynccontextmanager
    async def lease(self, name: str, low_priority: bool = False,
                    avoid: frozenset[str] = frozenset()) -> AsyncIterator[tuple[Target, dict[str, float]]]:
        """Hold a target of the model for one request: start an instance if none is usable, wait for a slot in the
        model's queue (``low_priority``: a batch line, behind every interactive request and within the model's
        ``batch_share``), then take the usable target with the fewest requests in flight. ``avoid``: ids of
        targets that already failed this request (a retry goes elsewhere or nowhere)."""
        group = self.groups[self.router.resolve(name).name]
        group.stopped_by_operator = False
        timings = {"start_ms": 0.0, "queue_ms": 0.0}
        t0 = time.monotonic()
        if avoid and not group.usable(avoid):
            raise Unavailable(f"model {group.model.name}: no other instance or upstream is ready")
        cold = False
        for attempt in range(3):  # a model evicted while we queued is started again for us (twice at most)
            await self.swaps.turn(group)  # held back while the model is drained for a swap
            cold = await self._serving(group) or cold
            t1 = time.monotonic()
            timings["start_ms"] = (t1 - t0) * 1000 if cold else 0.0
            share = group.model.batch_share
            group.gate.share = share if share is not None else self.config.program.batch_share  # per lease: reloads
            await group.gate.acquire(group.model.name, low_priority, group.retry_after)
            timings["queue_ms"] = (time.monotonic() - t1) * 1000
            target = group.pick(avoid)
            if target is not None:
                break
            group.gate.release(low_priority)  # stopped or cooled while we queued
            if avoid or attempt == 2:
                raise Unavailable(f"model {group.model.name} stopped while the request waited",
                                  headers={"Retry-After": str(group.retry_after())})
        target.in_flight += 1
        held = time.monotonic()
        try:
            yield target, timings
        finally:
            target.in_flight -= 1
            target.last_used = time.time()
            group.learn_service(time.monotonic() - held)
            group.gate.release(low_priority)

    # ------------------------------------------------------------------ public control surface

    def resolve(self, name: str) -> ModelConfig:
        return self.router.resolve(name)

    def group(self, name: str) -> ModelGroup:
        """The instances and upstreams serving ``name`` (a name or alias)."""
        return self.groups[self.router.resolve(name).name]

    async def start_model(self, name: str) -> dict[str, Any]:
        """Start a model (placement and eviction as for a request) and wait until an instance is ready."""
        group = self.groups[self.router.resolve(name).name]
        if not group.instances:
            raise Unavailable(f"model {group.model.name} is served by upstreams only; there is nothing to start")
        group.stopped_by_operator = False
        await self._serving(group)
        return group.info()

    async def stop_model(self, name: str) -> dict[str, Any]:
        """Stop every instance of a model."""
        group = self.groups[self.router.resolve(name).name]
        group.stopped_by_operator = True
        await asyncio.gather(*(s.stop("stop requested") for s in group.instances))
        return group.info()

    async def reload_config(self, doc: dict[str, Any]) -> dict[str, list[str]]:
        """Validate and apply a new config document (the running one stays if it is invalid)."""
        return await self.watcher.apply_document(doc)

    def health(self) -> dict[str, Any]:
        """``ok``, or ``degraded`` with one reason per problem a person should act on (it still serves, but a device
        or plugin is missing or a model keeps crashing; ``Service.health`` adds the usage store)."""
        reasons: list[str] = []
        reasons += [f"device {r['name']} offline: {r.get('offline_reason') or 'no reason given'}"
                    for r in self.device_readings if not r.get("online")]
        reasons += [f"device plugin {e.file}: {e.reason}" for e in self.devices.errors]
        reasons += [f"interface plugin {e['file']}: {e['reason']}" for e in self.plugin_errors]
        now = time.monotonic()
        reasons += [f"model {s.model.name} in crash back-off: {s.crashes} failures in a row, next try in "
                    f"{s.retry_at - now:.0f} s ({s.last_error})"
                    for s in self.supervisors.values() if s.state == State.FAILED and s.retry_at > now]
        return {"status": "degraded" if reasons else "ok", "reasons": reasons,
                "uptime_s": time.time() - self.started_at, "version": __version__}

    def models_info(self) -> list[dict[str, Any]]:
        offline = {r["name"] for r in self.device_readings if not r.get("online")}
        out = []
        for group in self.groups.values():
            info = group.info()
            lost = set()
            for sup in group.instances:
                if sup.profile is not None and offline and sup.state in (State.STARTING, State.READY):
                    mapping = self.devices.resolve(sup.profile.required_devices)
                    lost |= {cfg for cfg in sup.profile.required_devices if mapping.get(cfg) in offline}
            if lost:
                info["devices_offline"] = sorted(lost)
            out.append(info | self.footprints.fields(group.model, info.get("profile")))
        return out

    def model_info(self, name: str) -> dict[str, Any]:
        group = self.groups[self.router.resolve(name).name]
        info = group.info()
        return info | self.footprints.fields(group.model, info.get("profile"))

    def logs(self, name: str, lines: int = 200) -> list[dict[str, Any]]:
        sup = self.supervisors.get(name) or self.supervisors.get(self.router.resolve(name).name)
        if sup is None:
            raise NotFound(f"no model {name}")
        return [x.to_dict() for x in sup.log.tail(lines)]

    def record_usage(self, rec: UsageRecord) -> None:
        """Called once per proxied request on the IOLoop: O(1), never touches a database."""
        self.usage.add(rec)
        for sink in self.usage_sinks:
            try:
                sink(rec)
            except Exception:
                log.exception("usage sink failed")
        if self.bus.has_subscribers("usage"):
            self.bus.publish("usage", rec.to_dict())

    # ------------------------------------------------------------------ loops

    async def _monitor_loop(self) -> None:
        interval = self.config.program.monitor_interval
        while self._running:
            await asyncio.sleep(interval)
            if self.config.program.disable_gpu_monitoring:
                continue
            try:
                await self.sample_devices()
            except Exception:
                log.exception("device sampling failed")
                continue
            if self.bus.has_subscribers("devices"):
                self.bus.publish("devices", self.devices_info())

    async def _throughput_loop(self) -> None:
        while self._running:
            await asyncio.sleep(1.0)
            if self.bus.has_subscribers("throughput"):
                self.bus.publish("throughput", self.usage.throughput())
