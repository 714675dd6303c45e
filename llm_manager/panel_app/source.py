"""Where the dashboard gets its data: the Manager in-process, or a running manager over HTTP.

Both sources have the same async methods, so every view works in ``llm-manager serve`` (LocalSource, snapshots
read on the IOLoop, database queries in a thread) and in a standalone ``panel serve`` (RemoteSource, the sync
Client run in a thread so the Panel server's loop never waits on the network).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from ..accounting.layer import Accounting
from ..client import Client, ClientError
from ..config.redact import redact
from ..errors import NotFound
from ..gateway.batch import BatchRunner
from ..runtime.manager import Manager
from ..service import Service
from .frames import (
    cost_summary,
    frame_from_records,
    records_to_dicts,
    summary_from_api,
    throughput_from_records,
)

log = logging.getLogger(__name__)

ModelCallback = Callable[[dict[str, Any]], None]
RECONNECT_S = 5.0  # a dropped /api/ws is retried this often; the 1 s poll covers the gap
# UsageRecord.ts is taken when the request arrives, so records are appended roughly, not strictly, in ts order;
# a scan for "since" only stops once records are this much older than asked for (longer than any request).
_ORDER_SLACK_S = 900.0


def monthly_budget(budgets: Iterable[Any]) -> float | None:
    """The first global, monthly, cost budget among config dicts, budget-status dicts or store rows (None: none)."""
    for b in budgets:
        get = b.get if isinstance(b, dict) else lambda k, d=None, b=b: getattr(b, k, d)
        if get("key_id") or get("key") or get("scope", "global") != "global":
            continue
        if get("period", "month") != "month" or get("unit", "cost") != "cost":
            continue
        for field in ("limit_value", "limit", "amount"):
            value = get(field)
            if isinstance(value, int | float) and value > 0:
                return float(value)
    return None


class LocalSource:
    """The Manager in this process: sync snapshots and the Manager's own async actions."""

    def __init__(self, manager: Manager, accounting: Accounting | None = None, runner: BatchRunner | None = None):
        self.manager = manager
        self.accounting = accounting  # None: a bare Manager (tests); usage then comes from the recent requests
        self.store = accounting.store if accounting is not None else None
        self.runner = runner  # the Batches API's runner (None: a manager without it)
        self.device_interval = float(manager.config.program.monitor_interval)

    @property
    def currency(self) -> str:
        if self.accounting is not None:
            return self.accounting.pricer.currency()
        return self.manager.config.program.currency or "USD"

    @property
    def usage_origin(self) -> str:
        if self.store is not None:
            return "the usage database"
        return "the in-memory recent requests (no usage database attached; history restarts with the manager)"

    async def models(self) -> list[dict[str, Any]]:
        return self.manager.models_info()

    async def devices(self) -> dict[str, Any]:
        return self.manager.devices_info()

    def watch_models(self, callback: ModelCallback) -> Callable[[], None]:
        """``callback(info)`` on each state change the manager publishes, as it happens (a poll misses short
        states: a model that loads in 0.3 s would go from stopped to ready); returns the unsubscribe function."""
        return self.manager.bus.subscribe("model", lambda _topic, info: callback(info))

    async def throughput(self) -> dict[str, Any]:
        return self.manager.usage.throughput()

    async def recent_usage(self, limit: int = 1000, since: float | None = None) -> list[dict[str, Any]]:
        """The newest records (at most ``limit``), newest last; only those with ts >= since when given.

        Only references are collected on the loop (the deque changes under a thread); the dicts are built in a
        worker thread, since thousands of them per second would otherwise cost the proxy real time."""
        refs = []
        for rec in reversed(self.manager.usage.recent):
            if since is not None and rec.ts < since:
                if rec.ts < since - _ORDER_SLACK_S:
                    break
                continue
            refs.append(rec)
            if len(refs) >= limit:
                break
        refs.reverse()
        return await asyncio.to_thread(records_to_dicts, refs) if len(refs) > 100 else records_to_dicts(refs)

    async def events(self) -> list[dict[str, Any]]:
        return list(self.manager.events[-200:])

    async def logs(self, name: str, n: int = 200) -> list[dict[str, Any]]:
        return self.manager.logs(name, n)

    async def plan(self, name: str) -> dict[str, Any]:
        return (await self.manager.plan(name)).to_dict()

    async def start(self, name: str) -> dict[str, Any]:
        return await self.manager.start_model(name)

    async def stop(self, name: str) -> dict[str, Any]:
        return await self.manager.stop_model(name)

    async def config(self) -> dict[str, Any]:
        return redact(self.manager.config.raw)

    async def usage_frame(self, since: float) -> pd.DataFrame:
        """Request rows since ``since``: from the usage store when there is one, else the in-memory records."""
        if self.store is not None:
            return await asyncio.to_thread(self.store.requests_frame, since=since)
        recent = list(self.manager.usage.recent)  # a copy on the loop: the deque changes under a thread
        return await asyncio.to_thread(frame_from_records, [r for r in recent if r.ts >= since])

    async def cost_summary(self, since: float, now: float) -> dict[str, Any]:
        return await asyncio.to_thread(cost_summary, await self.usage_frame(since), now)

    async def budget(self) -> float | None:
        if self.accounting is not None:
            return monthly_budget(self.accounting.security.budget_status())
        return monthly_budget(list(self.manager.config.program.budgets))

    async def batches(self, limit: int = 100) -> list[dict[str, Any]] | None:
        """The newest batches (OpenAI Batch objects), newest first; None without a Batches API."""
        if self.runner is None or self.runner.store is None:
            return None
        return await asyncio.to_thread(self.runner.store.batches, None, True, None, limit)

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        if self.runner is None:
            raise NotFound("this manager has no Batches API")
        return await self.runner.cancel(batch_id)


class RemoteSource:
    """A manager in another process, through :class:`llm_manager.client.Client` run in worker threads."""

    def __init__(self, client: Client | None = None):
        self.client = client or Client()
        self.device_interval = 2.0
        self.currency = "USD"
        self.usage_origin = f"the recent requests of the manager at {self.client.url}"
        self._config: dict[str, Any] | None = None

    async def _get(self, path: str, **params: Any) -> Any:
        """GET a path the Client has no method for; None when the server lacks the endpoint."""
        r = await asyncio.to_thread(self.client.http.get, path, params=params)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    async def models(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.client.models_info)

    async def devices(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.client.devices_info)

    def watch_models(self, callback: ModelCallback) -> Callable[[], None]:
        """``callback(info)`` for each model in /api/ws's first snapshot and each ``model`` message after it;
        returns the stop function."""
        task = asyncio.ensure_future(self._follow(callback))
        return task.cancel

    async def _follow(self, callback: ModelCallback) -> None:
        import tornado.websocket

        url = "ws" + self.client.url.removeprefix("http") + "/api/ws"
        protocols = ["llm-manager"]
        auth = self.client.http.headers.get("Authorization", "")
        if auth.startswith("Bearer "):  # the key as the server's subprotocol, never in the URL (logs)
            protocols.append("bearer." + base64.urlsafe_b64encode(auth[7:].encode()).decode().rstrip("="))
        while True:
            try:
                conn = await tornado.websocket.websocket_connect(url, subprotocols=protocols)
                try:
                    while (message := await conn.read_message()) is not None:
                        body = json.loads(message)
                        if body.get("type") == "model":
                            callback(body["model"])
                        elif body.get("type") == "snapshot":  # on (re)connecting: what changed meanwhile
                            for info in body.get("models", []):
                                callback(info)
                finally:
                    conn.close()
            except Exception as exc:  # the poll keeps the dashboard right; this only makes it prompt
                log.debug("model events from %s: %s", url, exc)
            await asyncio.sleep(RECONNECT_S)

    async def throughput(self) -> dict[str, Any]:
        now = time.time()
        return throughput_from_records(await self.recent_usage(5000, since=now - 5.0), now=now)

    async def recent_usage(self, limit: int = 1000, since: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        body = await self._get("/api/usage/recent", **params)
        rows = (body or {}).get("requests", [])
        return [r for r in rows if since is None or r.get("ts", 0) >= since][-limit:]

    async def events(self) -> list[dict[str, Any]]:
        body = await self._get("/api/events")
        return (body or {}).get("events", [])

    async def logs(self, name: str, n: int = 200) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.client.logs, name, n)

    async def plan(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.client.plan, name)

    async def start(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.client.start_model, name)

    async def stop(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.client.stop_model, name)

    async def config(self) -> dict[str, Any]:
        self._config = await asyncio.to_thread(self.client.config)
        program = self._config.get("program") or {}
        self.currency = program.get("currency") or self.currency
        return self._config

    async def usage_frame(self, since: float) -> pd.DataFrame:
        """The recent requests the manager keeps in memory (the whole history is aggregated server-side)."""
        rows = await self.recent_usage(10000, since=since)
        return await asyncio.to_thread(frame_from_records, rows)

    async def cost_summary(self, since: float, now: float) -> dict[str, Any]:
        """The server's own aggregate of its usage database; the in-memory recent requests if it has none."""
        body = await self._get("/api/usage/summary", days=max(1.0, (now - since) / 86400))
        if body is not None:
            self.usage_origin = f"the usage records of the manager at {self.client.url}"
            self.currency = body.get("currency") or self.currency
            return await asyncio.to_thread(summary_from_api, body)
        return await asyncio.to_thread(cost_summary, await self.usage_frame(since), now)

    async def budget(self) -> float | None:
        body = await self._get("/api/budgets")
        if body is not None:
            return monthly_budget(body.get("budgets") or [])
        config = self._config if self._config is not None else await self.config()
        return monthly_budget((config.get("program") or {}).get("budgets") or [])

    async def batches(self, limit: int = 100) -> list[dict[str, Any]] | None:
        """``GET /v1/batches`` with the client's key; None when the server has no Batches API."""
        try:
            return await asyncio.to_thread(self.client.batches, limit)
        except ClientError as exc:
            if getattr(exc, "status", 0) in (404, 405):
                return None
            raise

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.client.cancel_batch, batch_id)


Source = LocalSource | RemoteSource


def make_source(obj: Service | Manager | Client | Source) -> Source:
    """A source for a Service (or a bare Manager) in this process, a Client, or a source passed through."""
    if isinstance(obj, LocalSource | RemoteSource):
        return obj
    if isinstance(obj, Client):
        return RemoteSource(obj)
    if isinstance(obj, Service):
        return LocalSource(obj.manager, obj.accounting, obj.batches)
    return LocalSource(obj)
