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
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..accounting.cluster import NodeRegistry, node_info, node_url
from ..accounting.layer import Accounting
from ..client import Client, ClientError
from ..config.redact import redact
from ..errors import NotFound
from ..gateway.batch import BatchRunner
from ..runtime.manager import Manager
from ..service import Service
from .database import TableReader, alerts_frame
from .frames import (
    cost_summary,
    frame_from_records,
    monthly_budget,
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


class LocalSource:
    """The Manager in this process: sync snapshots and the Manager's own async actions."""

    live = True  # a manager behind it: the live views (models, devices, batches, logs) are offered

    def __init__(self, manager: Manager, accounting: Accounting | None = None, runner: BatchRunner | None = None,
                 alerts: Any = None, cluster: NodeRegistry | None = None):
        self.manager = manager
        self.cluster_registry = cluster  # the Service's node registry (None: no shared database)
        self.alerts = alerts  # the Service's alerts (history()), when it has them
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

    async def requests_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        """The request rows in [since, until): the store's (what was just served included), else the in-memory ones."""
        if self.store is not None:
            def read() -> pd.DataFrame:
                self.store.flush()
                return self.store.requests_frame(since=since, until=until)
            return await asyncio.to_thread(read)
        recent = list(self.manager.usage.recent)
        return await asyncio.to_thread(frame_from_records, [r for r in recent if in_range(r.ts, since, until)])

    async def events_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        if self.store is not None:
            return await asyncio.to_thread(self.store.events_frame, since, until)
        return events_frame([e for e in self.manager.events if in_range(e.get("ts", 0), since, until)])

    async def alerts_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        if self.alerts is not None:
            rows = await asyncio.to_thread(self.alerts.history, 10_000)
            return alerts_frame([r for r in rows if in_range(r.get("ts", 0), since, until)])
        if self.store is not None:
            return await asyncio.to_thread(TableReader(self.store.engine).alerts, since, until)
        return alerts_frame([])

    async def prices(self) -> dict[str, Any]:
        """Each model's pricing block as configured now (None: free): the what-if table starts from these."""
        if self.accounting is not None:
            return self.accounting.prices()
        return {name: None for name in self.manager.config.models}

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

    async def cluster(self) -> dict[str, Any]:
        """What ``GET /api/cluster`` answers: the registry's nodes; this node alone when there is no registry (or
        before its first heartbeat)."""
        name = self.manager.config.program.node_name
        nodes = await asyncio.to_thread(self.cluster_registry.nodes) if self.cluster_registry is not None else []
        if any(n.get("self") for n in nodes):
            return {"node": name, "nodes": nodes}
        url = node_url(self.manager) if self.manager.listen_port or self.manager.config.program.node_url else ""
        me = {"name": name, "url": url, "up": True, "self": True, "last_seen": time.time(), "seen_s_ago": 0.0,
              **node_info(self.manager)}
        return {"node": name, "nodes": sorted([*nodes, me], key=lambda n: n["name"]), "single": not nodes}


class RemoteSource:
    """A manager in another process, through :class:`llm_manager.client.Client` run in worker threads."""

    live = True

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

    async def requests_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        """``GET /api/usage/requests`` for the range (the manager's store, else its recent requests)."""
        days = max(1.0 / 24, (time.time() - (since or 0.0)) / 86400) if since else 3650.0
        body = await self._get("/api/usage/requests", days=days, limit=1_000_000)
        if body is None:
            rows = await self.recent_usage(10000, since=since)
        else:
            rows = body.get("requests") or []
        return await asyncio.to_thread(frame_from_records, [r for r in rows if in_range(r.get("ts", 0), since, until)])

    async def events_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        """The manager's recent model events (it keeps the last 500 in memory)."""
        return events_frame([e for e in await self.events() if in_range(e.get("ts", 0), since, until)])

    async def alerts_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        body = await self._get("/api/alerts", limit=10_000)
        rows = (body or {}).get("alerts") or []
        return alerts_frame([r for r in rows if in_range(r.get("ts", 0), since, until)])

    async def prices(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.client.prices)

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

    async def cluster(self) -> dict[str, Any]:
        """``GET /api/cluster``; the manager alone (its models and devices) when it shares no database."""
        body = await self._get("/api/cluster")
        if body and body.get("nodes"):
            return body
        name = (body or {}).get("node") or "this manager"
        devices = (await self.devices()).get("devices") or []
        return {"node": name, "nodes": [this_node(name, self.client.url, await self.models(), devices)],
                "single": True}


def this_node(name: str, url: str, models: list[dict[str, Any]], devices: list[dict[str, Any]]) -> dict[str, Any]:
    """A node entry, shaped like the registry's, for the manager the dashboard is attached to (no registry)."""
    return {"name": name, "url": url, "up": True, "self": True, "last_seen": time.time(), "seen_s_ago": 0.0,
            "version": None,
            "models": [{"name": m["name"], "state": m.get("state", "?"), "in_flight": m.get("in_flight", 0),
                        "queued": m.get("queued", 0),
                        "instances": [{"id": i.get("id"), "state": i.get("state")} for i in m.get("instances") or []],
                        "upstreams": [{"id": u.get("id"), "healthy": u.get("healthy")}
                                      for u in m.get("upstreams") or []]} for m in models],
            "devices": [{"name": d["name"], "online": bool(d.get("online", True)),
                         "free_mb": max(0, int((d.get("total_memory_mb") or 0) - (d.get("used_memory_mb") or 0))),
                         "total_mb": int(d.get("total_memory_mb") or 0)} for d in devices]}


def in_range(ts: float, since: float | None, until: float | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


def events_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    """Model events (the manager's dicts) shaped like ``UsageStore.events_frame``: ts, model, kind, detail."""
    cols = ["ts", "model", "kind", "detail"]
    df = pd.DataFrame([{c: e.get(c) for c in cols} for e in events], columns=cols)
    df["ts"] = df["ts"].astype("float64")
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


Source = LocalSource | RemoteSource


def make_source(obj: Any) -> Any:
    """A source for a Service (or a bare Manager) in this process, a Client, or a source passed through."""
    if isinstance(obj, Client):
        return RemoteSource(obj)
    if isinstance(obj, Service):
        return LocalSource(obj.manager, obj.accounting, obj.batches, obj.alerts, obj.cluster)
    if isinstance(obj, Manager):
        return LocalSource(obj)
    return obj  # a source already (LocalSource, RemoteSource, DatabaseSource)
