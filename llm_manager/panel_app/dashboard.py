"""The Panel dashboard: a FastListTemplate with the filters in the sidebar, the analysis tabs first, then the live
operational tabs (models, devices, throughput, batches, logs, config), kept live by periodic callbacks.

``create_dashboard(manager_or_source)`` is called once per browser session (by ``llm-manager serve`` at
/dashboard, or by ``panel serve llm_manager/panel_app/app.py``). Each session gets its own views and callbacks,
and removes the callbacks when the session is destroyed so an abandoned tab costs nothing. A source without a
manager (``DatabaseSource``) gets the analysis tabs only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import panel as pn
from bokeh.document import Document
from panel.io.callbacks import PeriodicCallback
from panel.io.state import set_curdoc

from .source import Source, make_source
from .views.base import STATE_COLORS
from .views.batches import BatchesView
from .views.cluster import ClusterView
from .views.config import ConfigView
from .views.devices import DevicesView
from .views.insights import TABS as ANALYSIS_TABS
from .views.insights import Insights
from .views.logs import LogsView
from .views.models import ModelsView
from .views.planner import PlannerView
from .views.throughput import ThroughputView

LIVE_TABS = ("Models", "Devices", "Cluster", "Live throughput", "Batches", "Logs", "Config")
TABS = ANALYSIS_TABS + LIVE_TABS
ANALYSIS_INTERVAL_S = 30.0  # the analysis tabs re-read the store this often while shown (and on every filter change)
ACCENT = "#2563eb"
OPERATIONS = "Operations"  # one top tab holds the live ones: thirteen tabs in a row ran off the page


class Dashboard:
    """All views of one session and the timers that refresh them."""

    def __init__(self, source: Any):
        self.source: Source = make_source(source)
        self.live = bool(getattr(self.source, "live", True))
        self.insights = Insights(self.source)
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        tabs: list[tuple[str, Any]] = list(self.insights.tabs())
        if self.live:
            self.models = ModelsView(self.source)
            self.planner = PlannerView(self.source)
            self.devices = DevicesView(self.source)
            self.cluster = ClusterView(self.source)
            self.throughput = ThroughputView(self.source)
            self.batches = BatchesView(self.source)
            self.logs = LogsView(self.source)
            self.config = ConfigView(self.source)
            live_tabs = [
                (LIVE_TABS[0], pn.Column(self.models.panel,
                                         pn.Row(self.planner.panel, self.models.events_panel,
                                                sizing_mode="stretch_width"), sizing_mode="stretch_width")),
                (LIVE_TABS[1], self.devices.panel), (LIVE_TABS[2], self.cluster.panel),
                (LIVE_TABS[3], self.throughput.panel), (LIVE_TABS[4], self.batches.panel),
                (LIVE_TABS[5], self.logs.panel), (LIVE_TABS[6], self.config.panel)]
            # dynamic: a live tab's views are built in the browser when it is first opened (building all of them
            # with the page made opening "Operations" take seconds on a loaded machine)
            self.operations = pn.Tabs(*live_tabs, sizing_mode="stretch_width", dynamic=True)
            self.operations.param.watch(self._on_tab, "active")
            tabs.append((OPERATIONS, self.operations))
        self.tab_names = [name for name, _ in tabs]
        # not dynamic: a redraw arriving while BokehJS builds a just-opened tab's views was lost (or threw); the
        # live views send nothing while hidden anyway
        self.tabs = pn.Tabs(*tabs, sizing_mode="stretch_width", dynamic=False)
        self.tabs.param.watch(self._on_tab, "active")
        self.callbacks: list[Any] = []
        self._unwatch: Callable[[], None] | None = None
        self._analysed_at = 0.0
        self._ticks = 0
        self._states: tuple = ()

    # ------------------------------------------------------------ refresh

    def current(self) -> str:
        """The tab a person sees (a live tab's own name inside Operations)."""
        name = self.tab_names[self.tabs.active]
        return LIVE_TABS[self.operations.active] if name == OPERATIONS else name

    def show(self, name: str) -> None:
        """Switch to a tab by name (tests, links)."""
        if name in LIVE_TABS:
            self.operations.active = LIVE_TABS.index(name)
            name = OPERATIONS
        self.tabs.active = self.tab_names.index(name)

    def _active(self, name: str) -> bool:
        return self.current() == name

    def _analysis_shown(self) -> bool:
        return self.current() in ANALYSIS_TABS

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

    async def refresh_analysis(self, reload: bool = True) -> None:
        """The analysis tabs: the store is read again (``reload``) at most every 30 s unless asked."""
        self._analysed_at = time.monotonic()
        await self.insights.refresh(reload=reload)

    async def refresh_all(self, analysis: bool = True) -> None:
        """Everything once (first load, and tests)."""
        if analysis:
            await self.refresh_analysis()
        if not self.live:
            return
        await self.refresh_models()
        await self.devices.refresh()
        await self.cluster.refresh()
        await self.throughput.refresh()
        await self.batches.refresh()
        await self.logs.refresh()
        await self.config.refresh()

    async def _first_load(self) -> None:
        await self.refresh_all(analysis=self._analysis_shown())

    async def _tick(self) -> None:
        """Everything periodic: models each second (the header's status), the device sample at its interval,
        the throughput sample (shared by all sessions), the shown batches or logs, the analysis every 30 s."""
        self._ticks += 1
        if self.live:
            await self._tick_models()
            if self._ticks % max(1, round(self.devices.period_ms / 1000)) == 0:
                await self.devices.tick()
            await self.throughput.tick()
            if self._active("Cluster"):
                await self.cluster.tick()
            await self._tick_batches()
            await self._tick_logs()
        if self._ticks % int(ANALYSIS_INTERVAL_S) == 0:
            await self._tick_analysis()

    async def _tick_models(self) -> None:
        await self.refresh_models(wait=False)

    async def _tick_analysis(self) -> None:
        if self._analysis_shown() and not self.insights._lock.locked():
            self._analysed_at = time.monotonic()
            await self.insights.refresh(reload=True, share=True)

    async def _tick_batches(self) -> None:
        if self._active("Batches"):
            await self.batches.tick()

    async def _tick_logs(self) -> None:
        if self._active("Logs"):
            await self.logs.tick()

    def _set_shown(self) -> None:
        """Views on hidden tabs keep sampling (their history stays whole) but send nothing to the browser; a view
        shown again catches up on its next tick, not in this handler (BokehJS is still building the tab's views)."""
        if self.live:
            self.models.shown = self._active("Models")
            self.throughput.show(self._active("Live throughput"))
            self.devices.shown = self._active("Devices")

    async def _on_tab(self, _event: Any) -> None:
        self._set_shown()
        if self._analysis_shown():  # every analysis tab is drawn with the first; the 30 s tick and ⟳ keep them
            if self.insights.result is None:  # not during every switch: the redraw raced the tab's layout
                await self.refresh_analysis()
        elif self._active("Batches"):
            await self.batches.refresh()
        elif self._active("Cluster"):
            await self.cluster.refresh()
        elif self._active("Logs"):
            await self.logs.refresh()

    # ------------------------------------------------------------ session lifecycle

    def start(self) -> None:
        """Start the timers for this session and stop them when it ends."""
        self._set_shown()  # in a browser session, hidden tabs send nothing
        # one timer per session, ticking each second, rather than one per view: a browser tab left open on the
        # dashboard costs the proxy's loop one callback a second. In the background: a foreground periodic
        # callback marks the whole server busy while it runs, and Panel's busy indicator, one object shown in
        # every session's page, then sent two messages a second per open session to every open page (with five
        # sessions, fifty a second). No log line per tick either.
        timer = PeriodicCallback(callback=self._tick, period=1000, background=True, log=False)
        timer.start()
        self.callbacks = [timer]
        if self.live:
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
        """The tabs alone (notebooks, tests); :meth:`template` wraps them for a browser."""
        header = pn.Row(pn.pane.Markdown("## llm-manager", margin=(0, 10)), self.status, sizing_mode="stretch_width",
                        styles={"background": "#f4f6fa", "border-bottom": "1px solid #e2e8f0"})
        return pn.Column(header, pn.Row(pn.Column(self.insights.bar.panel, width=300), self.tabs,
                                        sizing_mode="stretch_width"), sizing_mode="stretch_width")

    def template(self) -> Any:
        """The page: the WebUI's palette, the filters in the sidebar, the status in the header."""
        tpl = pn.template.FastListTemplate(
            title="llm-manager", sidebar=[self.insights.bar.panel], main=[self.tabs], header=[self.status],
            accent_base_color=ACCENT, header_background=ACCENT, theme_toggle=False, sidebar_width=320,
            main_layout=None, raw_css=[PAGE_CSS])
        return tpl


PAGE_CSS = """
#main { background: #f4f6fa; }
#header .title a, #header .title { font-weight: 650; letter-spacing: .01em; }
"""


def status_html(models: list[dict[str, Any]]) -> str:
    """The one-line answer to "is everything all right?": how many models in each state."""
    counts: dict[str, int] = {}
    for m in models:
        counts[m["state"]] = counts.get(m["state"], 0) + 1
    parts = [f'<span style="color:{STATE_COLORS.get(s, "#455a64")};font-weight:600">● {n} {s}</span>'
             for s, n in sorted(counts.items(), key=lambda kv: list(STATE_COLORS).index(kv[0])
                                if kv[0] in STATE_COLORS else 99)]
    return (f'<div style="margin-top:8px;display:inline-block;background:#fff;border-radius:999px;padding:3px 14px;'
            f'font-size:0.95em;color:#0f172a">{len(models)} model{"" if len(models) == 1 else "s"}: ' + " &nbsp; ".join(parts) + "</div>")


def create_dashboard(source: Any, live: bool = True) -> Any:
    """One session's dashboard for a Manager, a Client or a source. In a server session (``live``) it is the
    template page with its timers started; elsewhere (notebooks, tests) the plain layout. Either way the
    :class:`Dashboard` is reachable as ``.dashboard``."""
    dash = Dashboard(source)
    serving = live and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None
    page = dash.template() if serving else dash.layout()
    page.dashboard = dash  # reachable from the returned object (notebooks, tests)
    if serving:
        dash.start()
    return page
