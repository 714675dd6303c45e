"""Each model's serving instances and remote upstreams (scale-out), when ``models_info()`` entries carry them.

An entry may have ``instances`` (local processes: id, port, state, pid, profile, devices, in_flight, uptime_s,
last_error), ``upstreams`` (remote endpoints: id, url, healthy, cooling_s, in_flight, failures, last_error),
``max_instances`` and ``fallbacks``. The table lists the models that scale out (``max_instances`` > 1, more than
one instance), have upstreams or fallbacks: one instance per model would only repeat the models table.

The table is always on the page (empty, with a line saying why, when no model scales out): a Tabulator made
visible while its tab was being built in the browser threw "Cannot read properties of null (reading
'verticalFillMode')" (its redraw ran before the table had initialised).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn

from ..frames import minutes
from .base import state_badge

NONE = "No model runs several instances or has upstreams or fallbacks (max_instances, upstreams, fallbacks)."
COLUMNS = ["model", "kind", "id", "status", "where", "pid / profile", "in flight", "uptime", "failures", "error"]


def instance_rows(models: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per instance and per upstream of every model given."""
    rows = []
    for m in models:
        for i in m.get("instances") or []:
            rows.append({"model": m["name"], "kind": "instance", "id": i.get("id", ""),
                         "status": state_badge(str(i.get("state", "?"))), "where": _where(i),
                         "pid / profile": f"{i.get('pid') or '—'} / {i.get('profile') or '—'}",
                         "in flight": i.get("in_flight", 0), "uptime": minutes(i.get("uptime_s")), "failures": "",
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


def _where(instance: dict[str, Any]) -> str:
    """"port 8081 on gpu0, gpu1": where a local instance listens and which devices it holds."""
    devices = ", ".join(str(d) for d in instance.get("devices") or [])
    return f"port {instance.get('port') or '—'}" + (f" on {html.escape(devices)}" if devices else "")


def scales_out(m: dict[str, Any]) -> bool:
    """More than the models table shows: several instances (or room for them), upstreams or fallbacks."""
    return ((m.get("max_instances") or 0) > 1 or len(m.get("instances") or []) > 1 or bool(m.get("upstreams"))
            or bool(m.get("fallbacks")))


def scale_notes(models: list[dict[str, Any]]) -> str:
    """"demo-chat: 2 of at most 4 instances ready; falls back to x" for the models that scale or fall back."""
    notes = []
    for m in models:
        parts = []
        if (m.get("max_instances") or 0) > 1:
            ready = sum(1 for i in m.get("instances") or [] if i.get("state") == "ready")
            parts.append(f"{ready} of at most {m['max_instances']} instances ready")
        if m.get("fallbacks"):
            parts.append("falls back to " + ", ".join(html.escape(str(f)) for f in m["fallbacks"]))
        if parts:
            notes.append(f"<b>{html.escape(m['name'])}</b>: " + "; ".join(parts))
    return "<br>".join(notes)


class InstancesTable:
    """The instances/upstreams table under the models table (empty when no model scales out)."""

    def __init__(self) -> None:
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=COLUMNS), disabled=True, show_index=False,
                                          sizing_mode="stretch_width", layout="fit_data_stretch", sortable=False,
                                          formatters={"status": {"type": "html"}, "error": {"type": "html"},
                                                      "where": {"type": "html"}},
                                          configuration={"renderVertical": "basic", "placeholder": NONE},
                                          css_classes=["instances-table"])
        self.notes = pn.pane.HTML("", sizing_mode="stretch_width")
        self.title = pn.pane.HTML("<b>Instances and upstreams</b>", sizing_mode="stretch_width")
        self.panel = pn.Column(self.title, self.notes, self.table, sizing_mode="stretch_width")
        self.scaling = False  # some model scales out, has upstreams or fallbacks

    def update(self, models: list[dict[str, Any]]) -> None:
        rows = instance_rows([m for m in models if scales_out(m)])
        self.scaling = bool(len(rows)) or any(scales_out(m) for m in models)
        notes = scale_notes(models) or NONE
        if notes != self.notes.object:
            self.notes.object = notes
        if not rows.equals(self.table.value):
            self.table.value = rows
