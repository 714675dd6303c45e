"""What every view shares: a guarded async refresh, an error banner, state colours and chart helpers."""

from __future__ import annotations

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

    Refresh never raises (a failed read shows a banner) and never overlaps itself: a slow remote manager
    must not stack up periodic callbacks.
    """

    title = "view"
    period_ms = 1000

    def __init__(self, source: Any):
        self.source = source
        self.error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self._busy = False
        self.refreshes = 0

    async def refresh(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            await self._refresh()
            if self.error.visible:
                self.error.visible = False
            self.refreshes += 1
        except Exception as exc:  # shown, not raised: one bad read must not kill the periodic callback
            log.debug("%s refresh failed", self.title, exc_info=True)
            self.error.object = f"**{self.title}:** could not read data: {type(exc).__name__}: {exc}"
            self.error.visible = True
        finally:
            self._busy = False

    async def _refresh(self) -> None:
        raise NotImplementedError

    @property
    def panel(self) -> pn.viewable.Viewable:
        raise NotImplementedError
