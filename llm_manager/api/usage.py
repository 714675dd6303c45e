"""Usage, cost, pricing, keys, budgets and Prometheus metrics over HTTP.

Each handler parses, calls one Manager method in a worker thread (database and analytics never
run on the IOLoop), and renders.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from ..accounting import analytics
from ..errors import BadRequest, NotFound
from ..service import Service
from .base import caller_of
from .management import ManagementHandler


class UsageHandler(ManagementHandler):
    def days(self, default: float = 30) -> float:
        try:
            days = float(self.get_argument("days", str(default)))
        except ValueError:
            days = math.nan
        if not math.isfinite(days):
            raise BadRequest("days: expected a number", param="days")
        return days

    def epoch(self, name: str) -> float | None:
        """An optional epoch-seconds query argument (``since``, ``until``)."""
        raw = self.get_argument(name, None)
        try:
            value = None if raw is None else float(raw)
        except ValueError:
            value = math.nan
        if value is not None and not math.isfinite(value):
            raise BadRequest(f"{name}: expected epoch seconds", param=name)
        return value

    async def blocking(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


class SummaryHandler(UsageHandler):
    async def get(self) -> None:
        self.write_json(await self.blocking(self.accounting.usage_summary, self.days()))


class RecentHandler(UsageHandler):
    def get(self) -> None:
        limit = max(1, min(int(self.get_argument("limit", "100")), 10000))
        self.write_json({"requests": self.manager.usage.records(limit)})


class RequestsHandler(UsageHandler):
    async def get(self) -> None:
        limit = max(1, min(int(self.get_argument("limit", "10000")), 1_000_000))
        df = await self.blocking(self.accounting.usage_frame, self.days(1), self.get_argument("model", None),
                                 self.get_argument("key", None))
        df = df.tail(limit).drop(columns=["time"], errors="ignore")
        if self.get_argument("format", "json") == "csv":
            self.set_header("Content-Type", "text/csv")
            self.finish(df.to_csv(index=False))
            return
        self.write_json({"requests": analytics.records(df)})


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
        days = self.days(1 if dim in ("throughput", "hour") else 30)

        def rows() -> list[dict[str, Any]]:
            return analytics.records(GROUPINGS[dim](self.accounting.usage_frame(days)))

        self.write_json({"rows": await self.blocking(rows)})


class CostsHandler(UsageHandler):
    """GET ?days=30 (or since/until, epoch seconds): runtime cost, GPU-seconds and energy (Wh) by model and key, per
    device and per loaded interval; token cost beside them."""

    async def get(self) -> None:
        self.write_json(await self.blocking(self.accounting.usage_costs, self.days(), self.epoch("since"),
                                            self.epoch("until")))


class RepriceHandler(UsageHandler):
    """POST {"pricing": {model: block}, "days": 30}: what history would have cost at other prices."""

    async def post(self) -> None:
        body = self.json_body()
        days = body.get("days", 30)
        if not isinstance(days, (int, float)) or isinstance(days, bool) or days <= 0:
            raise BadRequest("days: expected a positive number", param="days")
        self.write_json(await self.blocking(self.accounting.reprice, body.get("pricing"), float(days)))


class PricingHandler(UsageHandler):
    def get(self, model: str | None = None) -> None:
        self.write_json(self.accounting.prices())

    def put(self, model: str) -> None:
        """Body: a pricing block, or {"book": [dated blocks]} (a price book, as in the config); {} makes it free."""
        body = self.json_body()
        self.write_json(self.accounting.set_price(model, body["book"] if set(body) == {"book"} else body))


class KeysHandler(UsageHandler):
    async def get(self) -> None:
        self.write_json({"keys": await self.blocking(self.accounting.keys)})

    async def post(self) -> None:
        body = self.json_body()
        self.write_json(await self.blocking(self.accounting.create_key, body.get("name"), body.get("models")), 201)

    async def delete(self, key_id: str) -> None:
        self.write_json(await self.blocking(self.accounting.revoke_key, key_id))


class BudgetsHandler(UsageHandler):
    def get(self) -> None:
        self.write_json({"budgets": self.accounting.budgets()})


class MetricsHandler(UsageHandler):
    """Prometheus text format; readable with ``program.metrics_key`` as well as the admin key."""

    def prepare(self) -> None:
        if self.request.method != "OPTIONS":
            self.accounting.security.authorize_admin(caller_of(self.request), scope="metrics")

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.accounting.metrics.render())


def usage_routes(service: Service) -> list[tuple]:
    m = {"service": service}
    return [
        (r"/api/usage/summary", SummaryHandler, m),
        (r"/api/usage/recent", RecentHandler, m),
        (r"/api/usage/requests", RequestsHandler, m),
        (r"/api/usage/by/([a-z]+)", GroupedHandler, m),
        (r"/api/usage/reprice", RepriceHandler, m),
        (r"/api/usage/costs", CostsHandler, m),
        (r"/api/pricing", PricingHandler, m),
        (r"/api/pricing/([^/]+)", PricingHandler, m),
        (r"/api/keys", KeysHandler, m),
        (r"/api/keys/([^/]+)", KeysHandler, m),
        (r"/api/budgets", BudgetsHandler, m),
        (r"/api/metrics", MetricsHandler, m),
    ]
