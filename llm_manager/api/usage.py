"""Usage, cost, pricing, keys, budgets and Prometheus metrics over HTTP.

Store queries and analytics run in a worker thread: the IOLoop never waits on the database.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pandas as pd

from ..errors import BadRequest, NotFound
from ..security import hash_key, new_secret
from ..usage import analytics
from ..usage.pricing import period_start, reprice
from ..usage.store import ApiKey
from .management import ManagementHandler

DAY = 86400.0


def live_frame(manager: Any) -> pd.DataFrame:
    """The in-memory recent records as a requests frame (when no store is attached)."""
    rows = [r.to_dict() for r in manager.usage.recent]
    df = pd.DataFrame(rows)
    if not df.empty:
        df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return df


def requests_frame(manager: Any, since: float | None = None, until: float | None = None,
                   model: str | None = None, key_id: str | None = None) -> pd.DataFrame:
    """Blocking: the store's request log (all of it in range), else the live records."""
    if manager.store is not None:
        manager.store.flush()  # so what was just served is in the answer
        return manager.store.requests_frame(since=since, until=until, model=model, key_id=key_id)
    df = live_frame(manager)
    if df.empty:
        return df
    mask = pd.Series(True, index=df.index)
    if since is not None:
        mask &= df["ts"] >= since
    if until is not None:
        mask &= df["ts"] < until
    if model:
        mask &= df["model"] == model
    if key_id:
        mask &= df["key_id"] == key_id
    return df[mask]


class UsageHandler(ManagementHandler):
    def since(self, default_days: float = 30) -> float:
        try:
            days = float(self.get_argument("days", str(default_days)))
        except ValueError:
            raise BadRequest("days: expected a number", param="days") from None
        return time.time() - days * DAY

    async def blocking(self, fn: Any, *args: Any) -> Any:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class SummaryHandler(UsageHandler):
    async def get(self) -> None:
        m, since, now = self.manager, self.since(), time.time()
        month_start = min(since, period_start(now))  # the forecast needs the whole month so far

        def build() -> dict[str, Any]:
            df = requests_frame(m, month_start)
            out = analytics.summary(df[df["ts"] >= since] if not df.empty else df, now)
            out["forecast"] = analytics.month_forecast(df, now)
            return out

        result = await self.blocking(build)
        result["currency"] = m.pricer.currency() if m.pricer is not None else "USD"
        result["budgets"] = m.security.budget_status() if m.security is not None else []
        self.write_json(result)


class RecentHandler(UsageHandler):
    def get(self) -> None:
        limit = max(1, min(int(self.get_argument("limit", "100")), 10000))
        self.write_json({"requests": self.manager.usage.records(limit)})


class RequestsHandler(UsageHandler):
    async def get(self) -> None:
        since = self.since(1)
        model = self.get_argument("model", None)
        key = self.get_argument("key", None)
        limit = max(1, min(int(self.get_argument("limit", "10000")), 1_000_000))
        df = await self.blocking(requests_frame, self.manager, since, None, model, key)
        df = df.tail(limit)
        if self.get_argument("format", "json") == "csv":
            self.set_header("Content-Type", "text/csv")
            self.finish(df.drop(columns=["time"], errors="ignore").to_csv(index=False))
            return
        self.write_json({"requests": analytics.records(df.drop(columns=["time"], errors="ignore"))})


GROUPINGS = {
    "model": analytics.by_model,
    "key": analytics.by_key,
    "day": lambda df: analytics.by_period(df, "D"),
    "hour": lambda df: analytics.by_period(df, "h"),
    "latency": analytics.latency_percentiles,
    "throughput": lambda df: analytics.throughput(df, "1min"),
}


class GroupedHandler(UsageHandler):
    async def get(self, dim: str) -> None:
        if dim not in GROUPINGS:
            raise NotFound(f"unknown grouping {dim}; use one of {', '.join(GROUPINGS)}")
        since = self.since(1 if dim in ("throughput", "hour") else 30)
        df = await self.blocking(requests_frame, self.manager, since)
        self.write_json({"rows": analytics.records(await self.blocking(GROUPINGS[dim], df))})


class RepriceHandler(UsageHandler):
    """POST {"pricing": {model: block}, "days": 30}: what history would have cost at other prices."""

    async def post(self) -> None:
        from ..usage.pricing import parse_pricing

        body = self.json_body()
        blocks = body.get("pricing")
        if not isinstance(blocks, dict):
            raise BadRequest("pricing: expected {model: pricing block}", param="pricing")
        m = self.manager
        new = dict(m.pricer.prices) if m.pricer is not None else {}
        for name, block in blocks.items():
            new[m.resolve(name).name] = parse_pricing(block, f"pricing.{name}")
        since = time.time() - float(body.get("days", 30)) * DAY

        def compute() -> dict[str, Any]:
            df = requests_frame(m, since)
            if df.empty:
                return {"requests": 0, "current_cost": 0.0, "repriced_cost": 0.0, "by_model": []}
            cost = reprice(df, new)
            per = pd.DataFrame({"model": df["model"].astype(str), "current": df["cost"], "repriced": cost})
            g = per.groupby("model", sort=True)[["current", "repriced"]].sum().reset_index()
            return {"requests": len(df), "current_cost": float(df["cost"].sum()), "repriced_cost": float(cost.sum()),
                    "by_model": analytics.records(g)}

        self.write_json(await self.blocking(compute))


class PricingHandler(UsageHandler):
    def get(self, model: str | None = None) -> None:
        prices = self.manager.pricer.prices if self.manager.pricer is not None else {}
        self.write_json({name: (p.to_dict() if p else None) for name, p in prices.items()})

    def put(self, model: str) -> None:
        name = self.manager.resolve(model).name
        pricing = self.manager.pricer.set_price(name, self.json_body() or None)
        self.write_json({"model": name, "pricing": pricing.to_dict() if pricing else None})


class KeysHandler(UsageHandler):
    def get(self) -> None:
        store = self.manager.store
        rows = store.list_keys() if store is not None else []
        keys = [{"id": r.id, "name": r.name, "prefix": r.prefix, "models": json.loads(r.models or "[]"),
                 "created_at": r.created_at, "revoked": r.revoked_at is not None, "source": "store"} for r in rows]
        sec = self.manager.security
        if sec is not None:
            keys += [{"id": k.id, "name": k.name, "prefix": "", "models": list(k.models), "created_at": None,
                      "revoked": False, "source": "config"} for k in sec.keys.values() if k.source == "config"]
        self.write_json({"keys": keys})

    async def post(self) -> None:
        body = self.json_body()
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name: required", param="name")
        models = body.get("models") or []
        if not isinstance(models, list) or not all(isinstance(x, str) for x in models):
            raise BadRequest("models: expected a list of model names", param="models")
        models = [self.manager.resolve(x).name for x in models]
        store = self.manager.store
        if store is None:
            raise BadRequest("keys need the usage store (it is disabled)")
        secret = new_secret()
        row = ApiKey(id="key-" + uuid.uuid4().hex[:12], name=name.strip(), key_hash=hash_key(secret),
                     prefix=secret[:12], models=json.dumps(models))
        await self.blocking(store.add_key, row)
        await self.blocking(self.manager.security.load_store_keys)
        self.write_json({"id": row.id, "name": row.name, "key": secret, "prefix": row.prefix, "models": models}, 201)

    async def delete(self, key_id: str) -> None:
        store = self.manager.store
        if store is None or not await self.blocking(store.revoke_key, key_id):
            raise NotFound(f"no key {key_id}")
        sec = self.manager.security
        sec.keys = {h: k for h, k in sec.keys.items() if k.id != key_id}
        self.write_json({"id": key_id, "revoked": True})


class BudgetsHandler(UsageHandler):
    def get(self) -> None:
        sec = self.manager.security
        self.write_json({"budgets": sec.budget_status() if sec is not None else []})


class MetricsHandler(UsageHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.manager.metrics.render())


def usage_routes(manager: Any) -> list[tuple]:
    m = {"manager": manager}
    return [
        (r"/api/usage/summary", SummaryHandler, m),
        (r"/api/usage/recent", RecentHandler, m),
        (r"/api/usage/requests", RequestsHandler, m),
        (r"/api/usage/by/([a-z]+)", GroupedHandler, m),
        (r"/api/usage/reprice", RepriceHandler, m),
        (r"/api/pricing", PricingHandler, m),
        (r"/api/pricing/([^/]+)", PricingHandler, m),
        (r"/api/keys", KeysHandler, m),
        (r"/api/keys/([^/]+)", KeysHandler, m),
        (r"/api/budgets", BudgetsHandler, m),
        (r"/api/metrics", MetricsHandler, m),
    ]
