"""Attach the accounting layers to a Manager: usage store, pricing, keys/budgets/rate limits, metrics.

Kept apart from Manager so the core stays small and each layer is plain to find. All of it is
wired through the Manager's hooks (usage sinks, ``pricer``, ``security``, the event bus).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .config import Config
from .manager import Manager
from .metrics import Metrics
from .security import Security
from .usage.pricing import Pricing, next_period_start, parse_pricing, period_start
from .usage.record import UsageRecord
from .usage.store import EVENT_KINDS, UsageStore

DEVICE_SAMPLE_EVERY = 30.0  # seconds between device samples kept in the store (downsampled history)


class Pricer:
    """Live cost of a request: the model's price at the volume tier its month's tokens have reached."""

    def __init__(self, config: Config):
        self.prices: dict[str, Pricing | None] = {m.name: m.pricing for m in config.models.values()}
        self.period = period_start(time.time())
        self.period_end = next_period_start(self.period)
        self.period_tokens: dict[str, int] = {}

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
        return pricing.cost(rec.prompt_tokens, rec.completion_tokens, before) if pricing else 0.0

    def currency(self) -> str:
        return next((p.currency for p in self.prices.values() if p is not None), "USD")


def attach_optional_layers(manager: Manager, with_store: bool = True) -> None:
    """Wire store, pricing, security and metrics into ``manager`` (before ``manager.start()``)."""
    config = manager.config
    store = UsageStore(config.program.database_url, manager.data_dir, config.program.flush_interval) if with_store else None
    manager.store = store
    manager.pricer = Pricer(config)
    manager.metrics = Metrics(manager)
    manager.security = Security(config.program, store, lambda n: manager.resolve(n).name, manager.bus)
    if store is not None:
        manager.pricer.load_totals(store)
        manager.usage_sinks.append(store.record)
        manager.closers.append(store.close)
        manager.bus.subscribe("event", lambda _t, e: _store_event(store, e))
        manager.bus.subscribe("devices", _device_sampler(store))
    manager.security.init_budgets()
    manager.config_hooks.append(lambda new: _refresh(manager, new))
    manager.usage_sinks.append(lambda rec: manager.security.on_usage(rec))
    manager.usage_sinks.append(manager.metrics.observe)


def _refresh(manager: Manager, new: Config) -> None:
    """After a config reload: new prices (month-to-date volume kept), keys, limits and budgets."""
    manager.pricer.prices = Pricer(new).prices
    old_used = {b.name: b for b in manager.security.budgets}
    security = Security(new.program, manager.store, lambda n: manager.resolve(n).name, manager.bus)
    security.init_budgets()
    for b in security.budgets:
        if b.name in old_used and old_used[b.name].start == b.start:
            b.used, b.warned = max(b.used, old_used[b.name].used), old_used[b.name].warned
    manager.security = security


def _store_event(store: UsageStore, event: dict[str, Any]) -> None:
    kind = event["kind"]
    if kind == "stop" and event.get("detail", "").startswith("idle"):
        kind = "idle_stop"
    if kind in EVENT_KINDS:
        store.record_event(event["model"], kind, event.get("detail", ""), event.get("ts"))


def _device_sampler(store: UsageStore) -> Any:
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


async def run_blocking(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
