"""Model control centre: the models table with start/stop (one or several), loading progress and recent events.

Actions run as background tasks so a start that takes minutes never holds the session: the table keeps
refreshing (every second, from ``models()`` snapshots) and shows ``starting`` with its progress meanwhile.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

import pandas as pd
import panel as pn

from ..frames import ago, duration
from .base import View, state_badge

COLUMNS = ["model", "mode", "state", "profile", "port", "in flight", "queued", "last used", "uptime", "loading %",
           "error"]
# fixed widths: the table is built empty, so Tabulator cannot size the columns to the data
WIDTHS = {"model": 150, "mode": 90, "state": 100, "profile": 95, "port": 70, "in flight": 75, "queued": 70,
          "last used": 90, "uptime": 75, "loading %": 95, "error": 220, "start": 70, "stop": 65}
START_HTML = '<span title="start this model" style="color:#2e7d32;font-weight:700">▶ start</span>'
OK = '<span style="color:#2e7d32;font-weight:700">✓</span>'
FAIL = '<span style="color:#c62828;font-weight:700">✗</span>'
STOP_HTML = '<span title="stop this model" style="color:#c62828;font-weight:700">■ stop</span>'


def loading_pct(m: dict[str, Any]) -> float:
    """How much of its start timeout a starting model has used (0 when not starting)."""
    if m.get("state") != "starting" or not m.get("start_elapsed_s"):
        return 0.0
    return round(min(100.0, 100.0 * m["start_elapsed_s"] / max(1e-9, m.get("start_timeout_s") or 1.0)), 1)


def model_rows(models: list[dict[str, Any]], now: float | None = None) -> pd.DataFrame:
    now = now or time.time()
    rows = [{
        "model": m["name"], "mode": m.get("mode", ""), "state": state_badge(m["state"]),
        "profile": m.get("profile") or "—", "port": m.get("port"), "in flight": m.get("in_flight", 0),
        "queued": m.get("queued", 0), "last used": ago(m.get("last_used"), now), "uptime": duration(m.get("uptime_s")),
        "loading %": loading_pct(m), "error": html.escape(m.get("last_error") or ""),
    } for m in models]
    return pd.DataFrame(rows, columns=COLUMNS, index=[m["name"] for m in models])


class ModelsView(View):
    title = "Models"

    def __init__(self, source: Any):
        super().__init__(source)
        self.models: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task] = set()
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=COLUMNS), show_index=False, selectable="checkbox", sizing_mode="stretch_width",
            disabled=True, buttons={"start": START_HTML, "stop": STOP_HTML}, layout="fit_data_fill",
            sortable=False,
            formatters={"state": {"type": "html"}, "loading %": {"type": "progress", "max": 100, "color": "#1565c0"},
                        "error": {"type": "textarea"}},
            titles={"start": "", "stop": ""}, widths=WIDTHS)
        self.table.on_click(self._on_cell_click)
        self.start_selected = pn.widgets.Button(label="▶ Start selected", color="success", disabled=True)
        self.stop_selected = pn.widgets.Button(label="■ Stop selected", color="danger", disabled=True)
        self.start_selected.on_click(lambda _e: self.act("start", self.selected()))
        self.stop_selected.on_click(lambda _e: self.act("stop", self.selected()))
        self.table.param.watch(self._on_selection, "selection")
        self.loading = pn.Column(sizing_mode="stretch_width")
        self._loading_rows: dict[str, tuple[pn.pane.Markdown, pn.indicators.Progress]] = {}
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
        if event.column in ("start", "stop") and event.row is not None and event.row < len(self.table.value):
            self.act(event.column, [self.table.value.index[event.row]])

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

    def _update_loading(self) -> None:
        starting = [m for m in self.models if m["state"] == "starting"]
        if set(self._loading_rows) != {m["name"] for m in starting}:
            self._loading_rows = {m["name"]: (pn.pane.Markdown(margin=(0, 10)),
                                              pn.indicators.Progress(max=100, value=-1, width=240, bar_color="primary"))
                                  for m in starting}
            self.loading.objects = [pn.Row(pn.indicators.LoadingSpinner(value=True, size=22, color="primary"),
                                           md, bar) for md, bar in self._loading_rows.values()]
        for m in starting:
            md, bar = self._loading_rows[m["name"]]
            elapsed = m.get("start_elapsed_s") or 0.0
            md.object = (f"**{m['name']}** loading ({m.get('profile') or '?'}): {elapsed:.1f} s "
                         f"of {m.get('start_timeout_s') or 0:.0f} s timeout")
            pct = loading_pct(m)
            bar.value = int(pct) if pct >= 1 else -1  # animated until there is visible progress to show

    async def _refresh(self) -> None:
        self.models = await self.source.models()
        rows = model_rows(self.models)
        current = self.table.value
        if current is None or list(current.index) != list(rows.index) or list(current.columns) != COLUMNS:
            self.table.value = rows
        else:
            changed = rows[(rows != current).any(axis=1)]
            if len(changed):
                self.table.patch(changed)
        self._update_loading()
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
                   pn.pane.Markdown("Tick rows to act on several models; ▶/■ act on one.",
                                    styles={"color": "#616161"})),
            self.table, self.loading, self.messages, sizing_mode="stretch_width")

    @property
    def events_panel(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Markdown("### Recent events"), self.events, sizing_mode="stretch_width")
