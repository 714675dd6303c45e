"""The Panel dashboard: the views in tabs, kept live by periodic callbacks that read snapshots only.

``create_dashboard(manager_or_source)`` is called once per browser session (by ``llm-manager serve`` at
/dashboard, or by ``panel serve llm_manager/panel_app/app.py``). Each session gets its own views and callbacks,
and removes the callbacks when the session is destroyed so an abandoned tab costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import panel as pn
from bokeh.document import Document
from panel.io.state import set_curdoc

from .source import Source, make_source
from .views.base import STATE_COLORS
from .views.batches import BatchesView
from .views.config import ConfigView
from .views.cost import CostView
from .views.devices import DevicesView
from .views.logs import LogsView
from .views.models import ModelsView
from .views.planner import PlannerView
from .views.throughput import ThroughputView

TABS = ("Models", "Devices", "Throughput & latency", "Cost", "Batches", "Logs", "Config")
COST_MIN_INTERVAL_S = 10.0


class Dashboard:
    """All views of one session and the timers that refresh them."""

    def __init__(self, source: Any):
        self.source: Source = make_source(source)
        self.models = ModelsView(self.source)
        self.planner = PlannerView(self.source)
        self.devices = DevicesView(self.source)
        self.throughput = ThroughputView(self.source)
        self.cost = CostView(self.source)
        self.batches = BatchesView(self.source)
        self.logs = LogsView(self.source)
        self.config = ConfigView(self.source)
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.tabs = pn.Tabs(
            (TABS[0], pn.Column(self.models.panel,
                                pn.Row(self.planner.panel, self.models.events_panel, sizing_mode="stretch_width"),
                                sizing_mode="stretch_width")),
            (TABS[1], self.devices.panel), (TABS[2], self.throughput.panel), (TABS[3], self.cost.panel),
            (TABS[4], self.batches.panel), (TABS[5], self.logs.panel), (TABS[6], self.config.panel),
            sizing_mode="stretch_width", dynamic=True)  # hidden tabs send nothing to the browser
        self.tabs.param.watch(self._on_tab, "active")
        self.callbacks: list[Any] = []
        self._unwatch: Callable[[], None] | None = None
        self._cost_at = 0.0
        self._states: tuple = ()

    # ------------------------------------------------------------ refresh

    def _active(self, name: str) -> bool:
        return TABS[self.tabs.active] == name

    def _models_changed(self) -> None:
        self.planner.set_models(self.models.models)
        self.logs.set_models([m["name"] for m in self.models.models])
        status = status_html(self.models.models)
        if status != self.status.object:
            self.status.object = status

    def apply_model_info(self, info: dict[str, Any]) -> None:
        """Show a state change the manager published (``starting`` included, however short) without a poll."""
        if self.models.apply(info):
            self._models_changed()

    def watch(self, doc: Document | None = None) -> None:
        """Follow the manager's state changes as they happen; each is applied in ``doc``'s next tick (it owns
        the document lock there), or at once without a document (tests)."""
        def on_info(info: dict[str, Any]) -> None:
            if doc is None:
                self.apply_model_info(info)
                return
            with set_curdoc(doc):
                pn.state.execute(partial(self.apply_model_info, info), schedule=True)

        self.unwatch()
        self._unwatch = self.source.watch_models(on_info)

    def unwatch(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    async def refresh_models(self, wait: bool = True) -> None:
        await self.models.refresh(wait)
        self._models_changed()
        states = tuple((m["name"], m["state"]) for m in self.models.models)
        if states != self._states:  # a plan shown must stay true: re-plan when a model changes state
            self._states = states
            if self.planner.model.value:
                await self.planner.refresh(wait)

    async def refresh_cost(self, force: bool = False, wait: bool = True) -> None:
        """At most every 10 s: with a usage store this is a database query (in a thread)."""
        if force or time.monotonic() - self._cost_at >= COST_MIN_INTERVAL_S:
            self._cost_at = time.monotonic()
            await self.cost.refresh(wait)

    async def refresh_all(self, cost: bool = True) -> None:
        """Everything once (first load, and tests). Cost only when asked: it may query the database."""
        await self.refresh_models()
        await self.devices.refresh()
        await self.throughput.refresh()
        if cost:
            await self.refresh_cost(force=True)
        await self.batches.refresh()
        await self.logs.refresh()
        await self.config.refresh()

    async def _first_load(self) -> None:
        await self.refresh_all(cost=self._active("Cost"))

    async def _tick_models(self) -> None:
        await self.refresh_models(wait=False)

    async def _tick_cost(self) -> None:
        if self._active("Cost"):
            await self.refresh_cost(wait=False)

    async def _tick_batches(self) -> None:
        if self._active("Batches"):
            await self.batches.tick()

    async def _tick_logs(self) -> None:
        if self._active("Logs"):
            await self.logs.tick()

    async def _on_tab(self, _event: Any) -> None:
        if self._active("Cost"):  # at once the first time; then as often as the 10 s rule allows
            await self.refresh_cost()
        elif self._active("Batches"):
            await self.batches.refresh()
        elif self._active("Logs"):
            await self.logs.refresh()

    # ------------------------------------------------------------ session lifecycle

    def start(self) -> None:
        """Start the timers for this session and stop them when it ends."""
        add = pn.state.add_periodic_callback
        self.callbacks = [
            add(self._tick_models, period=1000),
            add(self.devices.tick, period=self.devices.period_ms),
            add(self.throughput.tick, period=1000),
            add(self._tick_cost, period=int(COST_MIN_INTERVAL_S * 1000)),
            add(self._tick_batches, period=1000),
            add(self._tick_logs, period=1000),
        ]
        self.watch(pn.state.curdoc)
        pn.state.onload(self._first_load)
        pn.state.on_session_destroyed(self.on_session_destroyed)

    def on_session_destroyed(self, session_context: Any) -> None:
        """Bokeh calls this (exact signature required) when the browser tab is gone."""
        self.stop()

    def stop(self) -> None:
        self.unwatch()
        for cb in self.callbacks:
            cb.stop()
        self.callbacks = []

    def layout(self) -> pn.viewable.Viewable:
        header = pn.Row(pn.pane.Markdown("## llm-manager", margin=(0, 10)), self.status, sizing_mode="stretch_width",
                        styles={"background": "#f5f7fa", "border-bottom": "1px solid #dde3ea"})
        return pn.Column(header, self.tabs, sizing_mode="stretch_width")


def status_html(models: list[dict[str, Any]]) -> str:
    """The one-line answer to "is everything all right?": how many models in each state."""
    counts: dict[str, int] = {}
    for m in models:
        counts[m["state"]] = counts.get(m["state"], 0) + 1
    parts = [f'<span style="color:{STATE_COLORS.get(s, "#455a64")};font-weight:600">● {n} {s}</span>'
             for s, n in sorted(counts.items(), key=lambda kv: list(STATE_COLORS).index(kv[0])
                                if kv[0] in STATE_COLORS else 99)]
    return (f'<div style="padding-top:14px;font-size:1.05em">{len(models)} models: ' + " &nbsp; ".join(parts)
            + "</div>")


def create_dashboard(source: Any, live: bool = True) -> pn.viewable.Viewable:
    """One session's dashboard for a Manager, a Client or a source; ``live`` starts its timers in a server session."""
    dash = Dashboard(source)
    layout = dash.layout()
    layout.dashboard = dash  # reachable from the returned object (notebooks, tests)
    if live and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        dash.start()
    return layout
