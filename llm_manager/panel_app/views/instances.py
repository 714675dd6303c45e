"""Each model's serving instances and remote upstreams (scale-out), when ``models_info()`` entries carry them.

An entry may have ``instances`` (local processes: id, port, state, pid, profile, in_flight, uptime_s, last_error),
``upstreams`` (remote endpoints: id, url, healthy, cooling_s, in_flight, failures, last_error), ``max_instances``
and ``fallbacks``; a manager without scale-out has none of them, and the table stays hidden.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn

from ..frames import duration
from .base import state_badge

COLUMNS = ["model", "kind", "id", "status", "where", "pid / profile", "in flight", "uptime", "failures", "error"]


def instance_rows(models: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per instance and per upstream of every model that lists them."""
    rows = []
    for m in models:
        for i in m.get("instances") or []:
            rows.append({"model": m["name"], "kind": "instance", "id": i.get("id", ""),
                         "status": state_badge(str(i.get("state", "?"))), "where": f"port {i.get('port', '—')}",
                         "pid / profile": f"{i.get('pid') or '—'} / {i.get('profile') or '—'}",
                         "in flight": i.get("in_flight", 0), "uptime": duration(i.get("uptime_s")), "failures": "",
                         "error": html.escape(i.get("last_error") or "")})
        for u in m.get("upstreams") or []:
            cooling = u.get("cooling_s") or 0.0
            state = "ready" if u.get("healthy") and not cooling else "failed" if not u.get("healthy") else "stopping"
            label = "healthy" if state == "ready" else f"cooling {cooling:.0f} s" if cooling else "unhealthy"
            rows.append({"model": m["name"], "kind": "upstream", "id": u.get("id", ""),
                         "status": state_badge(state).replace(f">{state}<", f">{html.escape(label)}<"),
                         "where": html.escape(u.get("url", "")), "pid / profile": "—",
                         "in flight": u.get("in_flight", 0), "uptime": "—", "failures": u.get("failures", 0),
                         "error": html.escape(u.get("last_error") or "")})
    return pd.DataFrame(rows, columns=COLUMNS)


def scale_notes(models: list[dict[str, Any]]) -> str:
    """"demo-chat: 2 of at most 4 instances ready; falls back to x" for the models that scale or fall back."""
    notes = []
    for m in models:
        parts = []
        if m.get("max_instances"):
            ready = sum(1 for i in m.get("instances") or [] if i.get("state") == "ready")
            parts.append(f"{ready} of at most {m['max_instances']} instances ready")
        if m.get("fallbacks"):
            parts.append("falls back to " + ", ".join(html.escape(str(f)) for f in m["fallbacks"]))
        if parts:
            notes.append(f"<b>{html.escape(m['name'])}</b>: " + "; ".join(parts))
    return "<br>".join(notes)


class InstancesTable:
    """The instances/upstreams table under the models table (hidden when no model has any)."""

    def __init__(self) -> None:
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=COLUMNS), disabled=True, show_index=False,
                                          sizing_mode="stretch_width", layout="fit_data_stretch", sortable=False,
                                          formatters={"status": {"type": "html"}, "error": {"type": "html"},
                                                      "where": {"type": "html"}})
        self.notes = pn.pane.HTML("", sizing_mode="stretch_width")
        self.title = pn.pane.HTML("<b>Instances and upstreams</b>", sizing_mode="stretch_width")
        self.panel = pn.Column(self.title, self.notes, self.table, sizing_mode="stretch_width", visible=False)

    def update(self, models: list[dict[str, Any]]) -> None:
        rows = instance_rows(models)
        self.panel.visible = bool(len(rows)) or any(m.get("max_instances") or m.get("fallbacks") for m in models)
        notes = scale_notes(models)
        if notes != self.notes.object:
            self.notes.object = notes
        if not rows.equals(self.table.value):
            self.table.value = rows
