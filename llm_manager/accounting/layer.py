"""Usage, cost, pricing, keys, budgets and metrics of one manager: composed once, around the Manager.

``Accounting`` owns the usage store (optional), the live pricer, the security layer (keys, limits, budgets) and
the Prometheus metrics, and wires them to the Manager through its public hooks (usage sinks, the event bus,
closers, config hooks). The pipeline calls ``finish`` once per request. The query methods block (database,
analytics): the HTTP handlers call them in a worker thread; a notebook calls them directly. They have the
names ``Client``'s methods have, so notebooks and the dashboard work in-process and remote alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..config.parse import Config
from ..errors import BadRequest, NotFound
from ..runtime.manager import Manager
from . import analytics
from .energy import store_breakdown
from .ledger import BudgetLedger
from .metrics import Metrics
from .price_book import billed_vs_repriced, edited_books
from .pricing import PriceBook, next_period_start, parse_pricing, period_start
from .record import UsageRecord
from .runtime_cost import START_KINDS, open_intervals, profile_of
from .security import Security, hash_key, new_secret
from .store import EVENT_KINDS, ApiKey, UsageStore

DAY = 86400.0
log = logging.getLogger(__name__)
KEY_SYNC_EVERY = 1.0  # seconds between reads of the store's keys (revocations by other managers apply within it)
LOADED_CHANGES = frozenset({"start", "ready", "stop", "evict", "crash", "fail", "sleep", "wake"})  # GPU time moves
DEVICE_SAMPLE_EVERY = 30.0  # seconds between device samples kept in the store (downsampled history)
FIRST_KEY_WARNING = ("this is the first API key, so authentication is now ON: every /v1 request needs "
                     "'Authorization: Bearer <key>' and requests without a key get 401 (until now /v1 was open to "
                     "anyone). Give your clients a key; revoking every key opens /v1 again.")


class Pricer:
    """Live cost of a request: the price its model's book has in effect when it finishes, at the volume tier its
    month's tokens have reached (a mid-month price change keeps the month's volume)."""

    def __init__(self, config: Config):
        self.prices: dict[str, PriceBook | None] = {m.name: m.pricing for m in config.models.values()}
        self.period = period_start(time.time())
        self.period_end = next_period_start(self.period)
        self.period_tokens: dict[str, int] = {}
        self.default_discount = config.program.batch_discount  # batch lines' share off (Batches API)
        self.batch_discount = {m.name: m.batch_discount for m in config.models.values() if m.batch_discount is not None}

    def load_totals(self, store: UsageStore) -> None:
        """Month-to-date tokens per model, so volume tiers survive restarts (blocking)."""
        for name in self.prices:
            self.period_tokens[name] = store.period_totals(None, self.period, model=name)[0]

    def set_price(self, model: str, block: dict[str, Any] | list[Any] | None) -> PriceBook | None:
        self.prices[model] = parse_pricing(block, f"pricing.{model}")
        return self.prices[model]

    def __call__(self, rec: UsageRecord) -> float:
        if not self.period <= rec.ts < self.period_end:  # a new month (or a clock set back)
            self.period = period_start(rec.ts)
            self.period_end, self.period_tokens = next_period_start(self.period), {}
        before = self.period_tokens.get(rec.model, 0)
        self.period_tokens[rec.model] = before + rec.total_tokens
        pricing = self.prices.get(rec.model)
        cost = pricing.cost(rec.prompt_tokens, rec.completion_tokens, before, rec.ts) if pricing else 0.0
        return cost * (1.0 - self.batch_discount.get(rec.model, self.default_discount)) if rec.batch_id else cost

    def currency(self) -> str:
        return next((p.currency for p in self.prices.values() if p is not None), "USD")


class Accounting:
    """Counts, prices and guards what the Manager serves (see the module docstring)."""

    def __init__(self, manager: Manager, store: UsageStore | None):
        self.manager = manager
        self.store = store
        self._gpu_refresh: asyncio.Future[Any] | None = None
        self._gpu_again = False
        self.pricer = Pricer(manager.config)
        self.metrics = Metrics(manager)
        self.ledger: BudgetLedger | None = None  # cluster-wide budgets, on a database nodes share (PostgreSQL)
        if store is not None and store.engine.dialect.name == "postgresql":
            self.ledger = BudgetLedger(store.engine, lambda: self.security.budgets,
                                       lambda e: manager.bus.publish("event", e))
        if store is not None:
            close_dangling(store)
        self.security = self._security(manager.config)
        if store is not None:
            self.pricer.load_totals(store)
            manager.usage_sinks.append(store.record)
            manager.closers.append(store.close)
            manager.bus.subscribe("event", lambda _t, e: self._store_event(store, e))
            manager.bus.subscribe("devices", _device_sampler(store, self._refresh_gpu_budgets))
            manager.bus.subscribe("event", self._gpu_budgets_after_event)
        manager.usage_sinks.append(lambda rec: self.security.on_usage(rec))
        manager.usage_sinks.append(self.metrics.observe)
        manager.config_hooks.append(self.apply_config)

    async def sync_keys(self, every: float = KEY_SYNC_EVERY) -> None:
        """Keep the store's keys current: a key created or revoked by another manager on the same database (or by
        hand in it) takes effect here within ``every`` seconds. Runs until cancelled (``Service`` owns it)."""
        loop = asyncio.get_running_loop()
        while self.store is not None:
            await asyncio.sleep(every)
            security = self.security  # a config reload replaces it
            try:
                version = security.keys_version
                security.take_store_keys(await loop.run_in_executor(None, security.store_keys), read_at=version)
            except Exception as exc:  # the store is down: keep the keys we have, say so, try again
                log.warning("reading API keys from the usage store failed: %s", exc)

    def _security(self, config: Config) -> Security:
        security = Security(config.program, self.store, lambda n: self.manager.resolve(n).name, self.manager.bus)
        security.init_budgets()
        if self.ledger is not None:
            self.ledger.seed(security.budgets)
            security.ledger = self.ledger
        return security

    def start_terms(self, model: str, profile: str) -> tuple[float | None, dict[str, float]]:
        """What a start of ``model`` with ``profile`` is billed at under the current config: the hourly price (the
        profile's, else the model's) and {device name: MB} it holds (also the fallback for pre-v8 events)."""
        cfg = self.manager.config.models.get(model)
        if cfg is None:
            return None, {}
        prof = next((p for p in cfg.profiles if p.name == profile), None)
        if prof is None:
            return cfg.price_per_hour, {}
        price = prof.price_per_hour if prof.price_per_hour is not None else cfg.price_per_hour
        names = self.manager.devices.resolve([*prof.required_devices, *prof.memory_mb])
        return price, {names.get(d) or d: float(prof.memory_mb.get(d, 0))
                       for d in dict.fromkeys([*prof.required_devices, *prof.memory_mb])}

    def _store_event(self, store: UsageStore, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "stop" and event.get("detail", "").startswith("idle"):
            kind = "idle_stop"
        if kind not in EVENT_KINDS:
            return
        detail, price, holdings = event.get("detail", ""), None, None
        if kind in START_KINDS:  # what this load holds and is billed at, as in effect now
            profile = profile_of(detail)
            if not profile:  # a wake names no profile: the instance keeps the one it started with
                sup = self.manager.supervisors.get(event.get("instance") or event["model"])
                profile = sup.profile.name if sup is not None and sup.profile is not None else ""
                detail += f"; profile {profile}" if profile else ""
            price, holdings = self.start_terms(event["model"], profile)
        elif kind == "footprint":  # what the model was measured to hold ({config device: MB}), kept with the event
            holdings = {str(d): float(mb) for d, mb in (event.get("memory") or {}).items()}
        store.record_event(event["model"], kind, detail, event.get("ts"), price, holdings)

    def _refresh_gpu_budgets(self) -> None:
        """GPU-hour budgets are measured from the store (events and samples), off the IOLoop, after each sample; a
        sample taken while a measurement runs gets one more after it (the last change is never missed)."""
        if not any(b.unit == "gpu_hours" for b in self.security.budgets):
            return
        if self._gpu_refresh is not None and not self._gpu_refresh.done():
            self._gpu_again = True
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published outside the event loop (tests): nothing to schedule on
            return
        security, self._gpu_again = self.security, False
        self._gpu_refresh = loop.run_in_executor(None, self._measure_gpu_hours, security)

        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                security.apply_gpu_hours(f.result())
            if self._gpu_again:
                self._refresh_gpu_budgets()

        self._gpu_refresh.add_done_callback(done)

    def _gpu_budgets_after_event(self, _topic: str, event: dict[str, Any]) -> None:
        """A load or unload re-measures GPU-hour budgets: one shorter than the monitor interval changes no device
        sample (the budget then stayed at 0 until the next periodic sample, 30 s later)."""
        if event.get("kind") in LOADED_CHANGES:
            self._refresh_gpu_budgets()

    def _measure_gpu_hours(self, security: Security) -> list[float | None]:
        """(A worker thread.) The store's queued rows first: the load or stop that asked for this measurement is
        still queued (flushed every ``flush_interval``), and measured without it a short load counted 0 GPU-hours
        until the next sample, 30 s later."""
        if self.store is not None:
            try:
                self.store.flush()
            except Exception:  # the writer reports a failing store; measure what it holds
                pass
        return security.measure_gpu_hours()

    def apply_config(self, new: Config) -> None:
        """After a config reload: new prices (month-to-date volume kept), keys, limits and budgets."""
        fresh = Pricer(new)
        self.pricer.prices, self.pricer.batch_discount = fresh.prices, fresh.batch_discount
        self.pricer.default_discount = fresh.default_discount
        old = {b.name: b for b in self.security.budgets}
        security = self._security(new)
        for b in security.budgets:
            if b.name in old and old[b.name].start == b.start:
                b.used, b.warned = max(b.used, old[b.name].used), old[b.name].warned
        self.security = security

    def finish(self, rec: UsageRecord) -> None:
        """Stamp, price and record one finished request (on the IOLoop, O(1))."""
        rec.ts = time.time()  # records are stamped when they finish (throughput windows rely on it)
        rec.cost = 0.0 if rec.cached else self.pricer(rec)  # a cache hit costs nothing and adds no tier volume
        self.manager.record_usage(rec)

    def health(self, runtime: dict[str, Any]) -> dict[str, Any]:
        """The Manager's health plus the usage store's: degraded while its flushes fail."""
        store = self.store.flush_status() if self.store is not None else None
        reasons = list(runtime["reasons"])
        if store is not None and store["failing"]:
            reasons.insert(0, f"usage store: the last {store['failed_flushes']} flush(es) failed "
                              f"({store['last_error']}); {store['pending']} rows wait in memory")
        return {**runtime, "status": "degraded" if reasons else "ok", "reasons": reasons, "usage_store": store}

    def usage_frame(self, days: float = 30, model: str | None = None, key: str | None = None,
                    since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """The request log (the store's, else the in-memory recent records) as a DataFrame."""
        since = since if since is not None else time.time() - days * DAY
        if self.store is not None:
            self.store.flush()  # include what was just served
            return self.store.requests_frame(since=since, until=until, model=model, key_id=key)
        df = pd.DataFrame([r.to_dict() for r in self.manager.usage.recent])
        if df.empty:
            return df
        df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        mask = df["ts"] >= since
        if until is not None:
            mask &= df["ts"] < until
        if model:
            mask &= df["model"] == model
        if key:
            mask &= df["key_id"] == key
        return df[mask]

    def usage_summary(self, days: float = 30) -> dict[str, Any]:
        """Totals, by model, key and day, the month-end forecast and budget status."""
        now = time.time()
        since = now - days * DAY
        df = self.usage_frame(since=min(since, period_start(now)))
        out = analytics.summary(df[df["ts"] >= since] if not df.empty else df, now)
        out["forecast"] = analytics.month_forecast(df, now)
        out["currency"] = self.pricer.currency()
        out["budgets"] = self.budgets()
        return out

    def prices(self) -> dict[str, Any]:
        prices = self.pricer.prices
        return {name: (p.to_dict() if p else None) for name, p in prices.items()}

    def set_price(self, model: str, pricing: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
        """Change a model's live price (a pricing block or a list of dated blocks as in config.json; None or {}:
        free). Rows already served keep the cost they were billed."""
        name = self.manager.resolve(model).name
        p = self.pricer.set_price(name, pricing or None)
        return {"model": name, "pricing": p.to_dict() if p else None}

    def reprice(self, pricing: dict[str, Any], days: float = 30) -> dict[str, Any]:
        """What the last ``days`` would have cost at other prices (nothing is changed): each row under the block
        of its model's edited book in effect at its time, beside what it was billed; by model, key and day."""
        if not isinstance(pricing, dict):
            raise BadRequest("pricing: expected {model: pricing block or list of dated blocks}", param="pricing")
        books = edited_books(self.pricer.prices, {self.manager.resolve(n).name: b for n, b in pricing.items()})
        df = self.usage_frame(days=days)
        if df.empty:
            return {"requests": 0, "current_cost": 0.0, "repriced_cost": 0.0, "by_model": [], "by_key": [],
                    "by_day": []}

        def by(*dims: str) -> pd.DataFrame:
            return billed_vs_repriced(df, books, dims, self.pricer.batch_discount, self.pricer.default_discount)

        total = by()
        models = by("model").rename(columns={"billed": "current"})
        return {"requests": len(df), "current_cost": float(total["billed"].sum()),
                "repriced_cost": float(total["repriced"].sum()), "by_model": analytics.records(models),
                "by_key": analytics.records(by("key_id")), "by_day": analytics.records(by("day"))}

    def usage_costs(self, days: float = 30, since: float | None = None,
                    until: float | None = None) -> dict[str, Any]:
        """Runtime cost (``price_per_hour`` x loaded time), GPU-seconds and energy (Wh) by model and by key, per
        device and per loaded interval, apart from token cost (``energy.store_breakdown``; blocking)."""
        now = time.time()
        since = since if since is not None else now - days * DAY
        until = min(until, now) if until is not None else now
        empty: dict[str, Any] = {"by_model": [], "by_key": [], "devices": [], "intervals": []}
        if self.store is None or until <= since:
            return {"since": since, "until": until, "currency": self.pricer.currency(), **empty}
        self.store.flush()
        frames = store_breakdown(self.store, since, until, alive_until=now, fallback=self.start_terms)
        return {"since": since, "until": until, "currency": self.pricer.currency(),
                **{name: analytics.records(frames[name]) for name in empty}}

    def keys(self) -> list[dict[str, Any]]:
        """Every API key (never the secrets): those created at run time and those in the config."""
        rows = self.store.list_keys() if self.store is not None else []
        out = [{"id": r.id, "name": r.name, "prefix": r.prefix, "models": json.loads(r.models or "[]"),
                "created_at": r.created_at, "revoked": r.revoked_at is not None, "source": "store"} for r in rows]
        out += [{"id": k.id, "name": k.name, "prefix": "", "models": list(k.models), "created_at": None,
                     "revoked": False, "source": "config"} for k in self.security.keys.values() if k.source == "config"]
        return out

    def create_key(self, name: str, models: list[str] | None = None) -> dict[str, Any]:
        """A new API key; its secret is in the answer's ``key`` and is never shown again.

        When it is the first key, /v1 stops being open: the answer's ``warning`` says so.
        """
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name: required", param="name")
        models = models or []
        if not isinstance(models, list) or not all(isinstance(x, str) for x in models):
            raise BadRequest("models: expected a list of model names", param="models")
        if self.store is None:
            raise BadRequest("API keys need the usage store")
        models = [self.manager.resolve(x).name for x in models]
        secret = new_secret()
        row = ApiKey(id="key-" + uuid.uuid4().hex[:12], name=name.strip(), key_hash=hash_key(secret),
                     prefix=secret[:12], models=json.dumps(models))
        was_open = not self.security.auth_required
        self.store.add_key(row)
        self.security.load_store_keys()
        out = {"id": row.id, "name": row.name, "key": secret, "prefix": row.prefix, "models": models}
        if was_open:  # nobody needed a key until now: say so where the key is shown, not after the first 401
            out["warning"] = FIRST_KEY_WARNING
        return out

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        if self.store is None or not self.store.revoke_key(key_id):
            raise NotFound(f"no key {key_id}")
        self.security.load_store_keys()  # a change taken here: a key sync that read before it is dropped
        return {"id": key_id, "revoked": True}

    def budgets(self) -> list[dict[str, Any]]:
        return self.security.budget_status()


def close_dangling(store: UsageStore) -> None:
    """At start: a loaded interval a previous run of this node left open (it died without a stop event) gets a
    ``crash`` event at its last sign of life, so it is never billed past it (blocking). Only this node's events (and
    those written before events named their node): the other nodes sharing the database keep their live intervals."""
    mine = [store.node, ""] if store.node else None
    dangling = open_intervals(store.events_frame(nodes=mine))
    if not dangling:
        return
    seen = store.last_sign_of_life(nodes=mine)
    for iv in dangling:
        where = f"instance {iv['instance']}: " if iv["instance"] else ""
        store.record_event(iv["model"], "crash", where + "no stop recorded: the manager ended; closed at its last "
                           "sign of life", ts=max(seen or iv["start"], iv["start"]))
    store.flush()


def _device_sampler(store: UsageStore, after: Callable[[], None]) -> Callable[[str, dict[str, Any]], None]:
    """Keep a device sample every DEVICE_SAMPLE_EVERY seconds, and at once when the models holding a device change
    (a load or unload changes the power draw: energy is integrated between samples)."""
    last: list[Any] = [0.0, None]

    def sample(_topic: str, payload: dict[str, Any]) -> None:
        now = time.time()
        holders = [(d["name"], sorted((m.get("instance") or m["model"], m.get("state", ""), m.get("memory_mb", 0))
                                      for m in d.get("models", []))) for d in payload["devices"]]
        if now - last[0] < DEVICE_SAMPLE_EVERY and holders == last[1]:
            return
        last[0], last[1] = now, holders
        for d in payload["devices"]:
            power = d.get("power_watts")
            store.record_device_sample(d["name"], float(d.get("used_memory_mb") or 0),
                                       float(d.get("total_memory_mb") or 0), float(d.get("usage_percentage") or 0),
                                       d.get("temperature_celsius"), now,
                                       float(power) if isinstance(power, (int, float)) else None,
                                       str(d.get("device_type") or ""))
        after()

    return sample
