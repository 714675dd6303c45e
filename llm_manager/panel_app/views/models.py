"""Model control centre: the models table with start/stop (one or several), loading progress and recent events.

Actions run as background tasks so a start that takes minutes never holds the session: the table keeps
refreshing (every second from ``models()`` snapshots, and at once on each state change the manager publishes)
and shows ``starting`` with its progress meanwhile.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

import pandas as pd
import panel as pn

from ..frames import minutes, minutes_ago
from .base import View, state_badge
from .instances import InstancesTable

MEMORY = "memory declared / measured"  # "—" where the manager reports no learned footprint
COLUMNS = ["model", "mode", "state", "action", "profile", "port", "in flight", "queued", "last used", "uptime",
           "loading %", MEMORY, "error"]
# fixed widths: the table is built empty, so Tabulator cannot size the columns to the data
WIDTHS = {"model": 150, "mode": 90, "state": 100, "action": 80, "profile": 95, "port": 70, "in flight": 75,
          "queued": 70, "last used": 90, "uptime": 75, "loading %": 95, "error": 220, MEMORY: 190}
START_HTML = '<span title="start this model" style="color:#2e7d32;font-weight:700;cursor:pointer">▶ start</span>'
STOP_HTML = '<span title="stop this model" style="color:#c62828;font-weight:700;cursor:pointer">■ stop</span>'
OK = '<span style="color:#2e7d32;font-weight:700">✓</span>'
FAIL = '<span style="color:#c62828;font-weight:700">✗</span>'
STARTABLE = ("stopped", "failed")
STOPPABLE = ("ready", "starting")


def loading_pct(m: dict[str, Any]) -> float:
    """How much of its start timeout a starting model has used (0 when not starting)."""
    if m.get("state") != "starting" or not m.get("start_elapsed_s"):
        return 0.0
    return round(min(100.0, 100.0 * m["start_elapsed_s"] / max(1e-9, m.get("start_timeout_s") or 1.0)), 1)


def action_for(state: str) -> str | None:
    """The one action a row offers: start a stopped or failed model, stop a ready or starting one."""
    return "start" if state in STARTABLE else "stop" if state in STOPPABLE else None


def memory_text(m: dict[str, Any]) -> str:
    """"5,000 / 4,812 MB" per device (prefixed by the device when several): what the config declares beside
    what the manager measured the model to use; "—" where either is unknown."""
    declared, measured = m.get("memory_declared_mb") or {}, m.get("memory_measured_mb") or {}
    if not isinstance(declared, dict) or not isinstance(measured, dict):
        return "—"
    devices = sorted(set(declared) | set(measured), key=str)

    def mb(v: Any) -> str:
        return f"{v:,.0f}" if isinstance(v, int | float) else "—"

    parts = [f"{mb(declared.get(d))} / {mb(measured.get(d))} MB" for d in devices]
    if len(devices) > 1:
        parts = [f"{d}: {p}" for d, p in zip(devices, parts, strict=True)]
    return "; ".join(parts) or "—"


def model_rows(models: list[dict[str, Any]], now: float | None = None) -> pd.DataFrame:
    now = now or time.time()
    links = {"start": START_HTML, "stop": STOP_HTML, None: ""}
    rows = [{
        "model": m["name"], "mode": m.get("mode", ""), "state": state_badge(m["state"]),
        "action": links[action_for(m["state"])],
        "profile": m.get("profile") or "—", "port": m.get("port"), "in flight": m.get("in_flight", 0),
        "queued": m.get("queued", 0), "last used": minutes_ago(m.get("last_used"), now),
        "uptime": minutes(m.get("uptime_s")),  # to the minute: see frames.minutes
        "loading %": loading_pct(m), MEMORY: memory_text(m), "error": html.escape(m.get("last_error") or ""),
    } for m in models]
    # the columns never change: a Tabulator whose columns are redefined while the browser still builds it throws
    return pd.DataFrame(rows, columns=COLUMNS, index=[m["name"] for m in models])


def loading_html(models: list[dict[str, Any]]) -> str:
    """One line per starting model: spinner, elapsed of timeout, progress bar (empty when none is starting).

    One HTML pane updated in place, not rows added and removed: BokehJS builds child views asynchronously, and a
    removal that arrives while the row's view is still being built leaves that row on the page for good."""
    lines = []
    for m in models:
        if m["state"] != "starting":
            continue
        elapsed, timeout = m.get("start_elapsed_s") or 0.0, m.get("start_timeout_s") or 0
        lines.append(
            '<div class="llm-loading" style="display:flex;align-items:center;gap:10px;margin:4px 10px">'
            '<span style="width:14px;height:14px;border:3px solid #bbdefb;border-top-color:#1565c0;'
            'border-radius:50%;display:inline-block;animation:llmspin 0.8s linear infinite"></span>'
            f'<span><b>{html.escape(m["name"])}</b> loading ({html.escape(m.get("profile") or "?")}): '
            f'{elapsed:.1f} s of {timeout:.0f} s timeout</span>'
            f'<progress max="100" value="{loading_pct(m):.0f}" style="width:240px"></progress></div>')
    if not lines:
        return ""
    return "<style>@keyframes llmspin{to{transform:rotate(360deg)}}</style>" + "".join(lines)


class ModelsView(View):
    title = "Models"

    def __init__(self, source: Any):
        super().__init__(source)
        self.models: list[dict[str, Any]] = []
        self._applied: dict[str, float] = {}  # model -> when a published state change was shown (monotonic)
        self._tasks: set[asyncio.Task] = set()
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=COLUMNS), show_index=False, selectable="checkbox", sizing_mode="stretch_width",
            disabled=True, layout="fit_data_fill", sortable=False, container_popup=False,
            formatters={"state": {"type": "html"}, "action": {"type": "html"},
                        "loading %": {"type": "progress", "max": 100, "color": "#1565c0"},
                        "error": {"type": "textarea"}},
            widths=WIDTHS)
        self.table.on_click(self._on_cell_click)
        self.start_selected = pn.widgets.Button(label="▶ Start selected", color="success", disabled=True)
        self.stop_selected = pn.widgets.Button(label="■ Stop selected", color="danger", disabled=True)
        self.start_selected.on_click(lambda _e: self.act("start", self.selected()))
        self.stop_selected.on_click(lambda _e: self.act("stop", self.selected()))
        self.table.param.watch(self._on_selection, "selection")
        self.loading = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 0))
        self.instances = InstancesTable()
        self.messages = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "0.9em"})
        self._messages: list[str] = []
        self.events = pn.widgets.Tabulator(pd.DataFrame(columns=["time", "model", "event", "detail"]), disabled=True,
                                           show_index=False, sizing_mode="stretch_width", height=220,
                                           layout="fit_data_stretch", sortable=False)

    # ------------------------------------------------------------ actions

    def selected(self) -> list[str]:
        value = self.table.value
        return [value.index[i] for i in self.table.selection if i < len(value)]

    def _on_selection(self, _event: Any) -> None:
        disabled = not self.table.selection
        self.start_selected.disabled = self.stop_selected.disabled = disabled

    def _on_cell_click(self, event: Any) -> None:
        """A click on a row's action link: the action the row offers for the model's state now."""
        if event.column != "action" or event.row is None or event.row >= len(self.table.value):
            return
        name = self.table.value.index[event.row]
        state = next((m["state"] for m in self.models if m["name"] == name), "")
        action = action_for(state)
        if action is not None:
            self.act(action, [name])

    def act(self, action: str, names: list[str]) -> list[asyncio.Task]:
        """Start or stop models in background tasks; results and errors land in the message list."""
        tasks = []
        for name in names:
            self._say(f"{'starting' if action == 'start' else 'stopping'} **{name}** …")
            task = asyncio.ensure_future(self._run(action, name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            tasks.append(task)
        return tasks

    async def _run(self, action: str, name: str) -> None:
        t0 = time.monotonic()
        try:
            info = await (self.source.start(name) if action == "start" else self.source.stop(name))
            self._say(f"{OK} **{name}** {info.get('state', 'done')} after {time.monotonic() - t0:.1f} s")
        except Exception as exc:  # shown to the person who clicked, with the manager's reason
            message = getattr(exc, "message", None) or str(exc)
            self._say(f"{FAIL} **{name}**: {action} failed: {message}")
        await self.refresh()

    async def wait_actions(self) -> None:
        """Wait for the actions in flight (tests, and shutting a session down cleanly)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _say(self, text: str) -> None:
        self._messages = [f"{time.strftime('%H:%M:%S')} {text}", *self._messages][:6]
        self.messages.object = "  \n".join(self._messages)

    # ------------------------------------------------------------ refresh

    def apply(self, info: dict[str, Any]) -> bool:
        """Show one model's new state now (a state change the manager published); False if it is unknown."""
        for i, m in enumerate(self.models):
            if m["name"] == info.get("name"):
                self.models[i] = {**m, **info}
                self._applied[m["name"]] = time.monotonic()
                self._render()
                return True
        return False

    def _render(self) -> None:
        if not self.shown:  # hidden tab: nothing to send; drawn when shown again
            return
        rows = model_rows(self.models)
        current = self.table.value
        if current is None or list(current.index) != list(rows.index) or list(current.columns) != list(rows.columns):
            self.table.value = rows
        else:
            changed = rows[(rows != current).any(axis=1)]
            if len(changed):
                self.table.patch(changed)
        text = loading_html(self.models)
        if text != self.loading.object:
            self.loading.object = text
        self.instances.update(self.models)

    async def _refresh(self) -> None:
        asked = time.monotonic()
        models = await self.source.models()
        shown = {m["name"]: m for m in self.models}
        # a state change shown while this snapshot was on its way (a remote read) is newer than the snapshot
        self.models = [shown[m["name"]] if self._applied.get(m["name"], 0.0) > asked and m["name"] in shown else m
                       for m in models]
        self._render()
        if not self.shown:
            return
        events = (await self.source.events())[-12:][::-1]
        frame = pd.DataFrame([{"time": time.strftime("%H:%M:%S", time.localtime(e["ts"])), "model": e["model"],
                               "event": e["kind"], "detail": e.get("detail", "")} for e in events],
                             columns=["time", "model", "event", "detail"])
        if not frame.equals(self.events.value):
            self.events.value = frame

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.error,
            pn.Row(self.start_selected, self.stop_selected,
                   pn.pane.Markdown("Tick rows to act on several models; ▶ start / ■ stop act on one.",
                                    styles={"color": "#616161"})),
            self.table, self.loading, self.instances.panel, self.messages, sizing_mode="stretch_width")

    @property
    def events_panel(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Markdown("### Recent events"), self.events, sizing_mode="stretch_width")
