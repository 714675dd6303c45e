"""The node registry: managers that share one database (``program.database_url``, PostgreSQL) see each other.

Each node writes a heartbeat every ``HEARTBEAT`` seconds — its URL, its models with their states and instances,
its devices' free memory — into ``cluster_node``; a node not seen for ``DOWN_AFTER`` heartbeats is down. The
database is the only thing shared: no node talks to another to agree on anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from .. import __version__
from .schema import ClusterNode

log = logging.getLogger(__name__)
HEARTBEAT = 2.0  # seconds between a node's heartbeats
DOWN_AFTER = 3  # heartbeats missed before a node counts as down


def node_info(manager: Any) -> dict[str, Any]:
    """What a heartbeat tells the other nodes (taken on the event loop: cheap, no I/O)."""
    models = [{"name": m["name"], "aliases": m.get("aliases", []), "mode": m.get("mode"), "state": m["state"],
               "in_flight": m.get("in_flight", 0), "queued": m.get("queued", 0),
               "instances": [{"id": i["id"], "state": i["state"]} for i in m.get("instances", [])],
               "upstreams": [{"id": u["id"], "healthy": u["healthy"]} for u in m.get("upstreams", [])]}
              for m in manager.models_info()]
    devices = [{"name": d["name"], "online": bool(d.get("online")),
                "free_mb": max(0, int((d.get("total_memory_mb") or 0) - (d.get("used_memory_mb") or 0))),
                "total_mb": int(d.get("total_memory_mb") or 0)} for d in manager.device_readings]
    return {"models": models, "devices": devices, "version": __version__}


class NodeRegistry:
    """This node's heartbeat and its view of the others (blocking calls: run them off the event loop)."""

    def __init__(self, engine: Any, name: str):
        self.engine = engine
        self.name = name
        self.started_at = time.time()

    def beat(self, url: str, info: dict[str, Any], now: float | None = None) -> None:
        now = time.time() if now is None else now
        values = {"url": url, "last_seen": now, "info": json.dumps(info), "started_at": self.started_at}
        t = ClusterNode.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            if conn.execute(update(t).where(t.c.name == self.name).values(**values)).rowcount == 0:
                conn.execute(t.insert().values(name=self.name, **values))

    def nodes(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every node that ever beat, with ``up`` (seen within the last ``DOWN_AFTER`` heartbeats) and its age."""
        now = time.time() if now is None else now
        with Session(self.engine) as s:
            rows = s.execute(select(ClusterNode).order_by(ClusterNode.name)).scalars().all()
        return [{"name": r.name, "url": r.url, "started_at": r.started_at, "last_seen": r.last_seen,
                 "seen_s_ago": round(now - r.last_seen, 1), "up": now - r.last_seen < DOWN_AFTER * HEARTBEAT,
                 "self": r.name == self.name, **json.loads(r.info or "{}")} for r in rows]


def node_url(manager: Any) -> str:
    """Where other nodes reach this one: ``program.node_url``, else its host (this machine's name when it listens
    on every address) and the port it bound."""
    program = manager.config.program
    if program.node_url:
        return program.node_url
    host = program.host if program.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    return f"http://{host}:{manager.listen_port}"


async def heartbeat(registry: NodeRegistry, manager: Any,
                    on_nodes: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
    """Beat every ``HEARTBEAT`` seconds until cancelled, then read the others (``on_nodes``: the gateway's routing
    view of them); a database that is away is retried, never fatal."""
    loop = asyncio.get_running_loop()
    while manager.listen_port is None and not manager.config.program.node_url:
        await asyncio.sleep(0.05)  # not on a port yet: the others could not reach it
    while True:
        try:
            await loop.run_in_executor(None, registry.beat, node_url(manager), node_info(manager))
            if on_nodes is not None:
                on_nodes(await loop.run_in_executor(None, registry.nodes))
        except Exception as exc:
            log.warning("node heartbeat failed: %s", exc)
        await asyncio.sleep(HEARTBEAT)
