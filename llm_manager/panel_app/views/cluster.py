"""The cluster: the managers sharing this one's database (``GET /api/cluster``), each with its URL, whether it is
up, when it was last seen, its models with their states and its devices' free memory.

A manager without a shared database (one node) shows itself alone, read from its own models and devices.
"""

from __future__ import annotations

import html
import time
from typing import Any

import pandas as pd
import panel as pn

from ..frames import ago
from ..shared import shared, source_key
from .base import View, state_badge

NODE_COLUMNS = ["node", "status", "last seen", "url", "models", "devices", "version"]
MODEL_COLUMNS = ["node", "model", "state", "in flight", "queued", "instances", "upstreams"]
DEVICE_COLUMNS = ["node", "device", "online", "free MB", "total MB", "free %"]
PERIOD_S = 2.0  # the heartbeat's period: reading faster shows nothing new
UP = '<span style="background:#2e7d32;color:white;border-radius:8px;padding:1px 8px;font-weight:600">up</span>'
DOWN = '<span style="background:#c62828;color:white;border-radius:8px;padding:1px 8px;font-weight:600">down</span>'


def _counts(models: list[dict[str, Any]]) -> str:
    states: dict[str, int] = {}
    for m in models:
        states[m.get("state", "?")] = states.get(m.get("state", "?"), 0) + 1
    return f"{len(models)}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) if models else "none"


def _free(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "none"
    free = sum(d.get("free_mb") or 0 for d in devices if d.get("online", True))
    total = sum(d.get("total_mb") or 0 for d in devices)
    return f"{len(devices)}, {free:,} of {total:,} MB free"


def node_rows(nodes: list[dict[str, Any]], now: float | None = None) -> pd.DataFrame:
    """One row per node: up/down, last seen, URL, its models' states, its devices' free memory."""
    now = time.time() if now is None else now
    rows = [{"node": html.escape(n["name"]) + (" <i>(this one)</i>" if n.get("self") else ""),
             "status": UP if n.get("up") else DOWN,
             "last seen": "now" if n.get("self") and n.get("up") else ago(n.get("last_seen"), now),
             "url": html.escape(n.get("url") or ""), "models": _counts(n.get("models") or []),
             "devices": _free(n.get("devices") or []), "version": n.get("version") or ""} for n in nodes]
    return pd.DataFrame(rows, columns=NODE_COLUMNS)


def model_rows(nodes: list[dict[str, Any]]) -> pd.DataFrame:
    """Every node's models with their states (a down node's as last reported)."""
    rows = []
    for n in nodes:
        for m in n.get("models") or []:
            inst, ups = m.get("instances") or [], m.get("upstreams") or []
            rows.append({"node": n["name"], "model": m["name"], "state": state_badge(str(m.get("state", "?"))),
                         "in flight": int(m.get("in_flight") or 0), "queued": int(m.get("queued") or 0),
                         "instances": f"{sum(i.get('state') == 'ready' for i in inst)} ready of {len(inst)}"
                         if inst else "—",
                         "upstreams": f"{sum(bool(u.get('healthy')) for u in ups)} healthy of {len(ups)}"
                         if ups else "—"})
    return pd.DataFrame(rows, columns=MODEL_COLUMNS)


def device_rows(nodes: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for n in nodes:
        for d in n.get("devices") or []:
            total, free = int(d.get("total_mb") or 0), int(d.get("free_mb") or 0)
            rows.append({"node": n["name"], "device": d["name"], "online": "yes" if d.get("online", True) else "no",
                         "free MB": free, "total MB": total, "free %": round(100.0 * free / total, 1) if total else 0.0})
    return pd.DataFrame(rows, columns=DEVICE_COLUMNS)


def summary(body: dict[str, Any]) -> str:
    nodes = body.get("nodes") or []
    up = sum(bool(n.get("up")) for n in nodes)
    alone = ("this manager alone (no database shared with other nodes)" if body.get("single") else
             "the managers sharing this one's database, seen through their heartbeats")
    return f"**{len(nodes)} node{'' if len(nodes) == 1 else 's'}, {up} up** — {alone}."


def _table(name: str, columns: list[str], html_cols: tuple[str, ...] = ()) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(pd.DataFrame(columns=columns), disabled=True, show_index=False, sortable=False,
                                sizing_mode="stretch_width", layout="fit_data_fill", selectable=False,
                                formatters={c: {"type": "html"} for c in html_cols},
                                configuration={"renderVertical": "basic"}, css_classes=[f"cluster-{name}"])


class ClusterView(View):
    title = "Cluster"
    period_ms = int(PERIOD_S * 1000)

    def __init__(self, source: Any):
        super().__init__(source)
        self.body: dict[str, Any] = {"nodes": []}
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["cluster-summary"])
        self.nodes = _table("nodes", NODE_COLUMNS, ("node", "status", "url"))
        self.models = _table("models", MODEL_COLUMNS, ("state",))
        self.devices = _table("devices", DEVICE_COLUMNS)
        self._at = 0.0
        self._ticking = False

    async def tick(self) -> None:
        """Each heartbeat while the tab is shown; every open session's ticks on one manager share one read."""
        if time.monotonic() - self._at >= PERIOD_S:
            self._ticking = True
            await self.refresh(wait=False)

    async def _refresh(self) -> None:
        self._at = time.monotonic()
        share, self._ticking = self._ticking, False  # an explicit refresh (the tab opened) reads now
        self.body = await shared(("cluster", *source_key(self.source)), PERIOD_S * 0.9 if share else 0.0,
                                 self.source.cluster)
        nodes = self.body.get("nodes") or []
        for widget, frame in ((self.nodes, node_rows(nodes)), (self.models, model_rows(nodes)),
                              (self.devices, device_rows(nodes))):
            if not frame.equals(widget.value):
                widget.value = frame
        text = summary(self.body)
        if text != self.summary.object:
            self.summary.object = text

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(self.error, self.summary, pn.pane.HTML("<b>Nodes</b>"), self.nodes,
                         pn.pane.HTML("<b>Their models</b>"), self.models,
                         pn.pane.HTML("<b>Their devices</b> (free memory as last reported)"), self.devices,
                         sizing_mode="stretch_width")
