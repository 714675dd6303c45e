"""A model's serving targets: its local instances (Supervisors) and remote upstreams, behind one queue.

The model's ``Gate`` admits as many requests as its usable targets have slots together (each instance has the
model's ``max_concurrency``, each upstream its own); an admitted request then goes to the target with the
fewest requests in flight (weights break ties). A target that becomes usable or unusable changes the Gate's
limit at once (``refresh``), so queued requests flow to a new instance the moment it is ready.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..config.parse import Config, ModelConfig
from .model_logs import ModelLog
from .queueing import Gate
from .reaper import Reaper
from .remote import Remote
from .supervisor import State, Supervisor


class Target(Protocol):
    """Where one request is sent: a local instance or a remote upstream."""

    remote: bool
    in_flight: int
    last_used: float
    headers: dict[str, str]

    @property
    def id(self) -> str: ...

    @property
    def limit(self) -> int | None: ...

    @property
    def weight(self) -> float: ...

    @property
    def upstream_model(self) -> str | None: ...

    def url(self, endpoint: str) -> str: ...

    def answered(self, first_byte: float | None, cold: bool = False) -> None:
        """It answered (passive health); ``cold``: the request waited for its start (the start's last phase)."""

    def failed(self, reason: str) -> None:
        """It failed a request with a connect error, a reset or a 5xx (passive health)."""


class ModelGroup:
    """Everything that serves one model. Built and changed by the Manager only."""

    def __init__(self, model: ModelConfig, config: Config, log_dir: Any, bus: Any, reaper: Reaper | None,
                 on_instance: Callable[[Supervisor, str, str], None], on_remote: Callable[[Remote, str, str], None]):
        self.model = model
        self.config = config
        self._log_dir, self._bus, self._reaper = log_dir, bus, reaper
        self._on_instance, self._on_remote = on_instance, on_remote
        self.gate = Gate(model.max_concurrency, model.max_queue, model.queue_timeout)
        self.instances: list[Supervisor] = []
        self.remotes: list[Remote] = []
        self.stopped_by_operator = False  # stop_model: min_instances waits for the next request or start
        self.load_s: float | None = None  # learned: seconds a start takes until healthy (moving average)
        self.service_s: float | None = None  # learned: seconds a request holds a slot (moving average)
        self._shape(model)

    def _new_instance(self, i: int) -> Supervisor:
        name = self.model.name if i == 0 else f"{self.model.name}@{i}"
        return Supervisor(self.model, self.config, ModelLog(name, self._log_dir, self._bus), self._reaper,
                          self._on_instance, instance=i, gate=self.gate)

    def _shape(self, model: ModelConfig) -> list[Supervisor]:
        """Match instances and remotes to ``model``; returns the instances no longer wanted (for the caller to
        stop: they may hold processes)."""
        count = model.max_instances if model.local else 0
        while len(self.instances) < count:
            self.instances.append(self._new_instance(len(self.instances)))
        dropped, self.instances = self.instances[count:], self.instances[:count]
        kept = {r.spec: r for r in self.remotes}
        self.remotes = [kept.get(spec) or Remote(spec, model.name, self._on_remote) for spec in model.upstreams]
        self.refresh()
        return dropped

    def take_config(self, config: Config, model: ModelConfig) -> list[Supervisor]:
        """A reloaded config: instances take their new block; returns those beyond the new ``max_instances``."""
        if model.min_instances != self.model.min_instances:
            self.stopped_by_operator = False  # a new minimum is a new wish
        self.config, self.model = config, model
        for sup in self.instances:
            sup.take_config(config, model)
        return self._shape(model)

    # ------------------------------------------------------------------ routing

    def targets(self) -> Iterable[Target]:
        yield from self.instances
        yield from self.remotes

    def usable(self, avoid: Iterable[str] = ()) -> list[Target]:
        """Ready instances and healthy upstreams, less those in ``avoid`` (ids that just failed this request)."""
        skip = set(avoid)
        ready: list[Target] = [s for s in self.instances if s.state == State.READY and s.id not in skip]
        return ready + [r for r in self.remotes if r.usable and r.id not in skip]

    def refresh(self) -> None:
        """The Gate admits as many requests as the usable targets have slots (unbounded if one is)."""
        limits = [t.limit for t in self.usable()]
        total = None if any(x is None for x in limits) else sum(x for x in limits if x is not None)
        self.gate.set_limits(total, self.model.max_queue, self.model.queue_timeout)

    def pick(self, avoid: Iterable[str] = ()) -> Target | None:
        """The usable target with the fewest requests in flight per unit of weight, preferring one with a free
        slot; None when there is none."""
        if not self.remotes and len(self.instances) == 1:  # the common case, on every request: no lists
            only = self.instances[0]
            return only if only.state == State.READY and only.id not in avoid else None
        usable = self.usable(avoid)
        free = [t for t in usable if t.limit is None or t.in_flight < t.limit]
        pool = free or usable
        if not pool:
            return None
        return min(pool, key=lambda t: ((t.in_flight + 1) / t.weight, -t.weight))

    # ------------------------------------------------------------------ learned times

    def learn_load(self, seconds: float) -> None:
        self.load_s = seconds if self.load_s is None else 0.7 * self.load_s + 0.3 * seconds

    def learn_service(self, seconds: float) -> None:
        self.service_s = seconds if self.service_s is None else 0.9 * self.service_s + 0.1 * seconds

    def retry_after(self) -> int:
        """Seconds a refused client should wait (``Retry-After``): the queue ahead of it drained at the rate the
        model's slots serve, and at least a start's learned time when nothing can serve now."""
        slots = self.gate.limit if self.gate.limit else max(1, self.gate.in_flight)
        wait = (self.gate.queued + 1) * (self.service_s or 1.0) / slots
        if not self.usable():
            wait = max(wait, self.load_s or 5.0)
        return max(1, min(600, math.ceil(wait)))

    # ------------------------------------------------------------------ state

    def live(self) -> list[Supervisor]:
        """Instances starting, ready or asleep (their processes run)."""
        return [s for s in self.instances if s.state in (State.STARTING, State.READY, State.SLEEPING)]

    def next_to_start(self) -> Supervisor | None:
        """The instance a start would launch: an asleep one (a wake is the fastest start), else a stopped one, else
        a failed one (its back-off decides), else one still stopping (the start waits for the stop)."""
        for state in (State.SLEEPING, State.STOPPED, State.FAILED, State.STOPPING):
            for sup in self.instances:
                if sup.state == state:
                    return sup
        return None

    @property
    def last_used(self) -> float:
        return max((t.last_used for t in self.targets()), default=0.0)

    def info(self) -> dict[str, Any]:
        """The model as one entry (instance 0's fields, states and counts over all instances), with its instances
        and upstreams."""
        first = self.instances[0].info() if self.instances else _remote_only(self.model, self.config)
        if len(self.instances) > 1:
            states = {s.state for s in self.instances}
            for state in (State.READY, State.STARTING, State.SLEEPING, State.STOPPING, State.FAILED, State.STOPPED):
                if state in states:
                    first["state"] = state.value
                    break
        if not self.instances:
            first["state"] = "ready" if any(r.usable for r in self.remotes) else ("failed" if self.remotes else
                                                                                 "stopped")
        first["in_flight"] = sum(t.in_flight for t in self.targets())
        first["queued"] = self.gate.queued
        first["last_used"] = self.last_used or None
        first.update(max_instances=self.model.max_instances if self.model.local else 0,
                     min_instances=self.model.min_instances, fallbacks=list(self.model.fallbacks),
                     instances=[_instance_info(s) for s in self.instances],
                     upstreams=[r.info() for r in self.remotes])
        return first


def _instance_info(sup: Supervisor) -> dict[str, Any]:
    i = sup.info()
    return {k: i[k] for k in ("id", "instance", "port", "state", "pid", "profile", "in_flight", "uptime_s",
                              "last_error", "last_used", "restarts", "start_elapsed_s")} | {
        "devices": list(sup.profile.required_devices) if sup.profile else []}


def _remote_only(model: ModelConfig, config: Config) -> dict[str, Any]:
    """The entry of a model served by upstreams alone (no process, no profile)."""
    return {"name": model.name, "aliases": list(model.aliases), "mode": model.mode, "id": model.name,
            "instance": None, "port": None, "state": "stopped", "profile": None, "profiles": [], "pid": None,
            "last_error": None, "auto_start": model.auto_start, "ttl_s": config.idle_ttl(model),
            "start_elapsed_s": None, "start_timeout_s": model.start_timeout, "restarts": 0, "uptime_s": None,
            "max_concurrency": model.max_concurrency, "pending_restart": False}
