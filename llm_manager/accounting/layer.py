"""Usage, cost, pricing, keys, budgets and metrics of one manager: composed once, around the Manager.

``Accounting`` owns the usage store (optional), the live pricer, the security layer (keys, limits, budgets) and
the Prometheus metrics, and wires them to the Manager through its public hooks (usage sinks, the event bus,
closers, config hooks). The pipeline calls ``finish`` once per request. The query methods block (database,
analytics): the HTTP handlers call them in a worker thread; a notebook calls them directly. They have the
names ``Client``'s methods have, so notebooks and the dashboard work in-process and remote alike.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..config.parse import Config
from ..errors import BadRequest, NotFound
from ..runtime.manager import Manager
from . import analytics
from .metrics import Metrics
from .pricing import Pricing, next_period_start, parse_pricing, period_start, reprice
from .record import UsageRecord
from .security import Security, hash_key, new_secret
from .store import EVENT_KINDS, ApiKey, UsageStore

DAY = 86400.0
DEVICE_SAMPLE_EVERY = 30.0  # seconds between device samples kept in the store (downsampled history)
FIRST_KEY_WARNING = ("this is the first API key, so authentication is now ON: every /v1 request needs "
                     "'Authorization: Bearer <key>' and requests without a key get 401 (until now /v1 was open to "
                     "anyone). Give your clients a key; revoking every key opens /v1 again.")


class Pricer:
    """Live cost of a request: the model's price at the volume tier its month's tokens have reached."""

    def __init__(self, config: Config):
        self.prices: dict[str, Pricing | None] = {m.name: m.pricing for m in config.models.values()}
        self.period = period_start(time.time())
        self.period_end = next_period_start(self.period)
        self.period_tokens: dict[str, int] = {}
        self.default_discount = config.program.batch_discount  # batch lines' share off (Batches API)
        self.batch_discount = {m.name: m.batch_discount for m in config.models.values() if m.batch_discount is not None}

    def load_totals(self, store: UsageStore) -> None:
        """Month-to-date tokens per model, so volume tiers survive restarts (blocking)."""
        for name in self.prices:
            self.period_tokens[name] = store.period_totals(None, self.period, model=name)[0]

    def set_price(self, model: str, block: dict[str, Any] | None) -> Pricing | None:
        self.prices[model] = parse_pricing(block, f"pricing.{model}")
        return self.prices[model]

    def __call__(self, rec: UsageRecord) -> float:
        if not self.period <= rec.ts < self.period_end:  # a new month (or a clock set back)
            self.period = period_start(rec.ts)
            self.period_end, self.period_tokens = next_period_start(self.period), {}
        before = self.period_tokens.get(rec.model, 0)
        self.period_tokens[rec.model] = before + rec.total_tokens
        pricing = self.prices.get(rec.model)
        cost = pricing.cost(rec.prompt_tokens, rec.completion_tokens, before) if pricing else 0.0
        return cost * (1.0 - self.batch_discount.get(rec.model, self.default_discount)) if rec.batch_id else cost

    def currency(self) -> str:
        return next((p.currency for p in self.prices.values() if p is not None), "USD")


class Accounting:
    """Counts, prices and guards what the Manager serves (see the module docstring)."""

    def __init__(self, manager: Manager, store: UsageStore | None):
        self.manager = manager
        self.store = store
        self.pricer = Pricer(manager.config)
        self.metrics = Metrics(manager)
        self.security = self._security(manager.config)
        if store is not None:
            self.pricer.load_totals(store)
            manager.usage_sinks.append(store.record)
            manager.closers.append(store.close)
            manager.bus.subscribe("event", lambda _t, e: _store_event(store, e))
            manager.bus.subscribe("devices", _device_sampler(store))
        manager.usage_sinks.append(lambda rec: self.security.on_usage(rec))
        manager.usage_sinks.append(self.metrics.observe)
        manager.config_hooks.append(self.apply_config)

    def _security(self, config: Config) -> Security:
        security = Security(config.program, self.store, lambda n: self.manager.resolve(n).name, self.manager.bus)
        security.init_budgets()
        return security

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

    def set_price(self, model: str, pricing: dict[str, Any] | None) -> dict[str, Any]:
        """Change a model's live price (a pricing block as in config.json; None or {}: free)."""
        name = self.manager.resolve(model).name
        p = self.pricer.set_price(name, pricing or None)
        return {"model": name, "pricing": p.to_dict() if p else None}

    def reprice(self, pricing: dict[str, dict[str, Any]], days: float = 30) -> dict[str, Any]:
        """What the last ``days`` would have cost at other prices (nothing is changed)."""
        if not isinstance(pricing, dict):
            raise BadRequest("pricing: expected {model: pricing block}", param="pricing")
        new = dict(self.pricer.prices)
        for name, block in pricing.items():
            new[self.manager.resolve(name).name] = parse_pricing(block, f"pricing.{name}")
        df = self.usage_frame(days=days)
        if df.empty:
            return {"requests": 0, "current_cost": 0.0, "repriced_cost": 0.0, "by_model": []}
        cost = reprice(df, new)
        per = pd.DataFrame({"model": df["model"].astype(str), "current": df["cost"], "repriced": cost})
        g = per.groupby("model", sort=True)[["current", "repriced"]].sum().reset_index()
        return {"requests": len(df), "current_cost": float(df["cost"].sum()), "repriced_cost": float(cost.sum()),
                "by_model": analytics.records(g)}

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
        self.security.keys = {h: k for h, k in self.security.keys.items() if k.id != key_id}
        return {"id": key_id, "revoked": True}

    def budgets(self) -> list[dict[str, Any]]:
        return self.security.budget_status()


def _store_event(store: UsageStore, event: dict[str, Any]) -> None:
    kind = event["kind"]
    if kind == "stop" and event.get("detail", "").startswith("idle"):
        kind = "idle_stop"
    if kind in EVENT_KINDS:
        store.record_event(event["model"], kind, event.get("detail", ""), event.get("ts"))


def _device_sampler(store: UsageStore) -> Callable[[str, dict[str, Any]], None]:
    last = [0.0]

    def sample(_topic: str, payload: dict[str, Any]) -> None:
        now = time.time()
        if now - last[0] < DEVICE_SAMPLE_EVERY:
            return
        last[0] = now
        for d in payload["devices"]:
            store.record_device_sample(d["name"], float(d.get("used_memory_mb") or 0),
                                       float(d.get("total_memory_mb") or 0), float(d.get("usage_percentage") or 0),
                                       d.get("temperature_celsius"), now)

    return sample
