"""What every view shares: a guarded async refresh, an error banner, state colours and chart helpers."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

log = logging.getLogger(__name__)

STATE_COLORS = {"ready": "#2e7d32", "starting": "#1565c0", "stopping": "#ef6c00", "stopped": "#757575",
                "failed": "#c62828"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def state_badge(state: str) -> str:
    """A coloured pill so ready/starting/failed stand out in a table of grey text."""
    color = STATE_COLORS.get(state, "#455a64")
    return (f'<span style="background:{color};color:white;border-radius:8px;padding:1px 8px;'
            f'font-weight:600">{html.escape(state)}</span>')


def local_ms(ts: float) -> float:
    """Epoch seconds as Bokeh datetime milliseconds shifted to the server's local time (axes show wall time)."""
    return (ts + (time.localtime(ts).tm_gmtoff or 0)) * 1000.0


def time_figure(title: str, y_label: str, height: int = 220, zero: bool = True) -> Any:
    """A stretchable datetime line chart with a hover tool, for the rolling series."""
    p = figure(title=title, x_axis_type="datetime", height=height, sizing_mode="stretch_width",
               tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right")
    p.yaxis.axis_label = y_label
    p.add_tools(HoverTool(tooltips=[("series", "$name"), ("time", "$x{%H:%M:%S}"), ("value", "$y{0.0}")],
                          formatters={"$x": "datetime"}))
    if zero:
        p.y_range.start = 0
    return p


def empty_source(columns: list[str]) -> ColumnDataSource:
    return ColumnDataSource({c: [] for c in columns})


class View:
    """A dashboard view: ``panel`` to show, ``refresh()`` to pull a new snapshot from the source.

    Refresh never raises (a failed read shows a banner) and never overlaps itself: calls that arrive while one
    runs collapse into a single pass after it, so a slow remote manager cannot stack up periodic callbacks and
    the last thing the person asked for is what ends up shown.
    """

    title = "view"
    period_ms = 1000

    def __init__(self, source: Any):
        self.source = source
        self.error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self._busy = False
        self._next: asyncio.Future[None] | None = None
        self.refreshes = 0
        self.shown = True  # the dashboard clears it while the view's tab is hidden: sample, but send nothing

    async def refresh(self, wait: bool = True) -> None:
        """Pull a new snapshot. While one runs, calls collapse into a single pass after it; ``wait`` callers
        return once that pass is done (so what they asked for is shown), timers (``wait=False``) at once."""
        if self._busy:
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            if wait:
                await asyncio.shield(self._next)
            return
        self._busy = True
        try:
            while True:
                covered, self._next = self._next, None  # requests made before this pass starts
                await self._refresh_once()
                if covered is not None and not covered.done():
                    covered.set_result(None)
                if self._next is None:
                    break
        finally:
            self._busy = False
            if self._next is not None and not self._next.done():  # cancelled mid-way: release the waiters
                self._next.set_result(None)
                self._next = None

    async def tick(self) -> None:
        """The periodic refresh: never waits behind a running one."""
        await self.refresh(wait=False)

    async def _refresh_once(self) -> None:
        try:
            await self._refresh()
            if self.error.visible:
                self.error.visible = False
            self.refreshes += 1
        except Exception as exc:  # shown, not raised: one bad read must not kill the periodic callback
            log.debug("%s refresh failed", self.title, exc_info=True)
            self.error.object = f"**{self.title}:** could not read data: {type(exc).__name__}: {exc}"
            self.error.visible = True

    async def _refresh(self) -> None:
        raise NotImplementedError

    @property
    def panel(self) -> pn.viewable.Viewable:
        raise NotImplementedError
