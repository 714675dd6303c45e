"""API keys (hashed at rest), the admin key, per-key and per-IP token-bucket rate limits, and budgets.

The config blocks (``program.api_keys``, ``budgets``, ``rate_limits``; their form is in ``config_blocks.py``)
arrive parsed in ``ProgramConfig``; nothing here re-validates them.
Keys created at run time (``/api/keys``, ``llm-manager keys create``) live in the usage store, hashed.
Budget counters start from the store's totals for the current period and then count in memory (on a database
several nodes share, in its ``budget_spend`` rows too: ``ledger.py``, cluster-wide); GPU-hour budgets
are measured from the store's events and device samples instead (``measure_gpu_hours``, after each device sample).
"""

from __future__ import annotations

import calendar
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..config.blocks import BudgetSpec, ConfigKey, hash_key
from ..config.parse import ProgramConfig
from ..errors import AuthenticationError, BudgetExceeded, PermissionDenied, RateLimited
from .energy import store_breakdown

BUDGET_THRESHOLDS = (0.5, 0.8, 1.0)


def new_secret() -> str:
    return "sk-llm-" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the transport read it: the key it presented (if any) and its address."""

    token: str | None
    ip: str = ""
    key_id: str | None = None  # an identity proven earlier (a batch's creator): stands in for the token


def presented_key(authorization: str | None, x_api_key: str | None = None) -> str | None:
    """The key in ``Authorization: Bearer <key>``, else in ``x-api-key`` (Anthropic's header)."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key


@dataclass
class KeyInfo:
    id: str
    name: str
    models: tuple[str, ...] = ()
    rpm: float | None = None
    tpm: float | None = None
    admin: bool = False
    source: str = "config"  # "config" | "store"

    @classmethod
    def from_config(cls, key: ConfigKey) -> KeyInfo:
        return cls(f"cfg:{key.name}", key.name, key.models, key.rpm, key.tpm)


class TokenBucket:
    """``rate`` units per minute, bursting up to one minute's worth; usage may overdraw (tokens are
    only known after the answer), and an overdrawn bucket makes the next request wait."""

    def __init__(self, per_minute: float):
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, need: float = 1.0) -> float:
        """0 when ``need`` units are available now, else seconds until they are."""
        self._refill()
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """Start and end (epoch seconds, UTC) of the day or month containing ``now``."""
    t = datetime.fromtimestamp(now, tz=timezone.utc)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86400
    start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(t.year, t.month)[1]
    return start.timestamp(), start.timestamp() + days * 86400


@dataclass
class Budget:
    """A configured budget (``BudgetSpec``) with its counters for the current period."""

    name: str
    scope: str  # "global" | "key"
    period: str  # "day" | "month"
    limit: float
    unit: str  # "cost" | "tokens" | "gpu_hours"
    key: str | None = None  # key id or name, for scope "key"
    used: float = 0.0
    start: float = 0.0
    end: float = 0.0
    warned: set[float] = field(default_factory=set)

    @classmethod
    def from_spec(cls, spec: BudgetSpec) -> Budget:
        return cls(spec.name, spec.scope, spec.period, spec.limit, spec.unit, spec.key)

    def applies(self, key: KeyInfo | None) -> bool:
        return self.scope == "global" or (key is not None and self.key in (key.id, key.name))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope, "key": self.key, "period": self.period, "unit": self.unit,
                "limit": self.limit, "used": self.used, "resets_at": self.end,
                "fraction": self.used / self.limit if self.limit else 0.0}


def is_loopback(ip: str | None) -> bool:
    try:
        return ipaddress.ip_address(ip or "").is_loopback
    except ValueError:
        return False


class Security:
    def __init__(self, program: ProgramConfig, store: Any = None, resolve: Any = None, bus: Any = None):
        self.admin_key = program.admin_key
        self.metrics_key = program.metrics_key
        self.store = store
        self.resolve = resolve  # name or alias -> model name
        self.bus = bus
        self.keys = {k.hash: KeyInfo.from_config(k) for k in program.api_keys}
        self.budgets = [Budget.from_spec(b) for b in program.budgets]
        self.rate_limits = program.rate_limits
        # the defaults as authorize/on_usage read them: {"rpm": ..., "tpm": ...}, None where unset
        self.key_limits = {"rpm": self.rate_limits.key_rpm, "tpm": self.rate_limits.key_tpm}
        self.ip_limits = {"rpm": self.rate_limits.ip_rpm}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.ledger: Any = None  # accounting.ledger.BudgetLedger on a shared database: budgets count cluster-wide
        self.keys_version = 0  # bumped by each change of the store's keys taken here
        self.load_store_keys()

    @property
    def auth_required(self) -> bool:
        return bool(self.keys)

    def load_store_keys(self) -> None:
        """Keys created at run time (blocking: at start, and after changes)."""
        if self.store is not None:
            self.take_store_keys(self.store_keys())

    def store_keys(self) -> dict[str, KeyInfo]:
        """The usable keys in the store now, by hash (blocking: a query; off the event loop once serving)."""
        out = {}
        for row in self.store.list_keys(include_revoked=False):
            models = tuple(m for m in json.loads(row.models or "[]") if m != "*")
            out[row.key_hash] = KeyInfo(row.id, row.name, models, admin=bool(row.admin), source="store")
        return out

    def take_store_keys(self, fresh: dict[str, KeyInfo], read_at: int | None = None) -> None:
        """Replace the store's keys by ``fresh`` (keys other managers on the database created or revoked included);
        config keys stay. One assignment: a request never sees half of it. ``read_at`` is the ``keys_version``
        when a background sync began its read: a key created or revoked here since then is newer than that read,
        which is dropped (applied, it brought a key revoked on this node back until the next sync)."""
        if read_at is not None and read_at != self.keys_version:
            return
        self.keys = {h: k for h, k in self.keys.items() if k.source != "store"} | fresh
        self.keys_version += 1

    def init_budgets(self, now: float | None = None) -> None:
        """Start each budget's counter from the store's totals for the current period (blocking)."""
        now = now or time.time()
        for b in self.budgets:
            b.start, b.end = period_bounds(b.period, now)
            b.used = 0.0
            if self.store is not None and b.unit != "gpu_hours":
                key_id = None if b.scope == "global" else self._key_id(b.key)
                tokens, cost = self.store.period_totals(key_id, b.start)
                b.used = float(cost if b.unit == "cost" else tokens)
        if any(b.unit == "gpu_hours" for b in self.budgets):
            self.apply_gpu_hours(self.measure_gpu_hours(now), warn=False)

    def measure_gpu_hours(self, now: float | None = None) -> list[float | None]:
        """GPU-hours used so far in each GPU-hour budget's period (None for the others; blocking): the GPU time of
        every loaded interval (global), or a key's token share of it (``energy.store_breakdown``)."""
        now = now or time.time()
        out: list[float | None] = []
        frames: dict[tuple[float, bool], Any] = {}
        for b in self.budgets:
            if b.unit != "gpu_hours" or self.store is None:
                out.append(None)
                continue
            per_key = b.scope == "key"
            if (b.start, per_key) not in frames:
                frames[b.start, per_key] = store_breakdown(self.store, b.start, now, alive_until=now,
                                                           with_requests=per_key)
            f = frames[b.start, per_key]
            if per_key:
                keys = f["by_key"]
                seconds = keys.loc[keys["key_id"] == self._key_id(b.key), "gpu_seconds"].sum()
            else:
                seconds = f["by_model"]["gpu_seconds"].sum()
            out.append(float(seconds) / 3600.0)
        return out

    def apply_gpu_hours(self, used: list[float | None], warn: bool = True) -> None:
        """Take measured GPU-hours (from ``measure_gpu_hours``, on the IOLoop) and warn at the thresholds."""
        for b, value in zip(self.budgets, used, strict=False):
            if value is not None:
                b.used = value
                if warn:
                    self._warn(b, "")

    def _key_id(self, name_or_id: str | None) -> str | None:
        for k in self.keys.values():
            if name_or_id in (k.id, k.name):
                return k.id
        return name_or_id

    # ---------------------------------------------------------------- authentication

    def authorize(self, caller: Caller, model: str | None) -> KeyInfo | None:
        """The caller's key (None on an open server); 401/403/429 otherwise."""
        if caller.key_id is not None:
            return self._authorize_proven(caller.key_id, model)
        ip = caller.ip
        self._limit(("ip", ip), self.ip_limits.get("rpm"), f"client {ip}")
        if not self.auth_required:
            return None
        token = caller.token
        if not token:
            raise AuthenticationError("missing API key: send Authorization: Bearer <key>")
        if self.admin_key and secrets.compare_digest(token, self.admin_key):
            return KeyInfo("admin", "admin", admin=True)
        info = self.keys.get(hash_key(token))
        if info is None:
            raise AuthenticationError("invalid or revoked API key")
        self._check_scope(info, model)
        self._limit(("key", info.id), info.rpm or self.key_limits.get("rpm"), f"key {info.name}")
        tpm = info.tpm or self.key_limits.get("tpm")
        if tpm:
            wait = self._bucket(("key-tpm", info.id), tpm).wait_time(0.0001)
            if wait > 0:
                raise RateLimited(f"key {info.name} is over its {tpm:g} tokens/minute limit",
                                  headers={"Retry-After": str(int(wait) + 1)})
        return info

    def _authorize_proven(self, key_id: str, model: str | None) -> KeyInfo | None:
        """An identity proven earlier (a batch line runs as the key that created the batch; "" for none): its
        revocation and model list apply, per-request rate limits do not (such work queues at low priority)."""
        if not self.auth_required:
            return None
        info = self.key_by_id(key_id) if key_id else None
        if info is None:
            raise AuthenticationError("the API key behind this work was revoked (or it was created without one)")
        self._check_scope(info, model)
        return info

    def _check_scope(self, info: KeyInfo, model: str | None) -> None:
        if model is not None and info.models:
            allowed = {self._canonical(m) for m in info.models}
            if self._canonical(model) not in allowed:
                raise PermissionDenied(f"key {info.name} may not use model {model}; allowed: {', '.join(info.models)}")

    def _canonical(self, name: str) -> str:
        if self.resolve is None:
            return name
        try:
            return self.resolve(name)
        except Exception:
            return name

    def authorize_admin(self, caller: Caller, scope: str = "admin") -> None:
        """Management needs the admin key when one is set; without one, only loopback clients may manage.

        ``scope="metrics"`` (``/api/metrics``) also takes ``program.metrics_key``: a Prometheus scraper can
        hold a key that reads metrics and nothing else.
        """
        given = caller.token
        if scope == "metrics" and self.metrics_key and given and secrets.compare_digest(given, self.metrics_key):
            return
        if self.admin_key:
            if not given or not secrets.compare_digest(given, self.admin_key):
                needed = "the metrics key (program.metrics_key) or " if scope == "metrics" and self.metrics_key else ""
                raise AuthenticationError(f"this endpoint needs {needed}the admin key (program.admin_key)")
            return
        if not is_loopback(caller.ip):
            raise PermissionDenied("the management API is only open to loopback clients until program.admin_key is set")

    # ---------------------------------------------------------------- rate limits

    def _bucket(self, key: tuple[str, str], per_minute: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.capacity != per_minute:
            bucket = self._buckets[key] = TokenBucket(per_minute)
        return bucket

    def _limit(self, key: tuple[str, str], rpm: float | None, who: str) -> None:
        if not rpm:
            return
        bucket = self._bucket(key, rpm)
        wait = bucket.wait_time(1.0)
        if wait > 0:
            raise RateLimited(f"{who} is over its {rpm:g} requests/minute limit",
                              headers={"Retry-After": str(int(wait) + 1)})
        bucket.take(1.0)

    # ---------------------------------------------------------------- budgets

    def check_budget(self, key: KeyInfo | None, model: str) -> None:
        now = time.time()
        for b in self.budgets:
            if not b.applies(key):
                continue
            if now >= b.end:
                b.start, b.end, b.used, b.warned = *period_bounds(b.period, now), 0.0, set()
            if b.used >= b.limit:
                reset = datetime.fromtimestamp(b.end, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                unit = {"tokens": "tokens", "gpu_hours": "GPU-hours"}.get(b.unit, "cost")
                raise BudgetExceeded(
                    f"budget {b.name!r} exhausted: {b.used:g} of {b.limit:g} ({unit}, {b.period}ly); resets at {reset}",
                    headers={"Retry-After": str(max(1, int(b.end - now)))})

    def key_by_id(self, key_id: str | None) -> KeyInfo | None:
        if key_id is None:
            return None
        if key_id == "admin":
            return KeyInfo("admin", "admin", admin=True)
        return next((k for k in self.keys.values() if k.id == key_id), None)

    def on_usage(self, rec: Any) -> None:
        """Count a finished request against budgets and token rate limits (O(budgets))."""
        key = self.key_by_id(rec.key_id)
        tokens = rec.prompt_tokens + rec.completion_tokens
        if key is not None and tokens:
            tpm = key.tpm or self.key_limits.get("tpm")
            if tpm:
                self._bucket(("key-tpm", key.id), tpm).take(tokens)
        for b in self.budgets:
            if b.unit == "gpu_hours" or not b.applies(key) or not (b.start <= rec.ts < b.end or b.end == 0):
                continue
            amount = rec.cost if b.unit == "cost" else tokens
            b.used += amount
            if self.ledger is not None:  # the cluster's row counts it and announces the thresholds, once
                self.ledger.add(b, amount)
            else:
                self._warn(b, rec.model)

    def _warn(self, b: Budget, model: str) -> None:
        for t in BUDGET_THRESHOLDS:
            if b.used >= t * b.limit and t not in b.warned:
                b.warned.add(t)
                if self.bus is not None:
                    self.bus.publish("event", {"kind": "budget", "model": model, "ts": time.time(),
                                               "detail": f"budget {b.name!r} at {int(t * 100)} % "
                                                         f"({b.used:g} of {b.limit:g})"})

    def budget_status(self) -> list[dict[str, Any]]:
        return [b.to_dict() for b in self.budgets]
