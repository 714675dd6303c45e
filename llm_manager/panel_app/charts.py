"""The analysis charts: stacked bars over time, lines with a band, horizontal bars.

Each builder returns a :class:`Chart`: its shape (what it looks like apart from its numbers), its numbers and a way
to draw it. A :class:`ChartPane` draws a Bokeh figure only for a new shape and otherwise gives the figure it shows
the new numbers in place: every open session redraws its analysis each 30 s, and building and replacing eight
figures per session cost the proxy's loop most of a core with five sessions open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d
from bokeh.plotting import figure
from panel.io.document import unlocked

from .format import ACCENT, PALETTE, money_ticks, money_tooltip


@dataclass
class Chart:
    """A chart before it is drawn. ``data`` holds one column dict per data source, in the order ``draw`` creates
    them; ``x_range`` (start, end) and ``factors`` (categories) are the ranges that follow the numbers."""

    shape: tuple
    data: list[dict[str, Any]]
    build: Callable[[list[ColumnDataSource]], Any]
    x_range: tuple[Any, Any] | None = None
    factors: list[str] = field(default_factory=list)

    def draw(self) -> Any:
        """A new Bokeh figure of this chart."""
        return self.build([ColumnDataSource(d) for d in self.data])


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(len(a[k]) == len(b[k]) and np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
                                        for k in a)


class ChartPane:
    """A pane that shows :class:`Chart` s: a figure is built for a new shape only."""

    def __init__(self) -> None:
        self.pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.chart: Chart | None = None
        self.draws = 0  # figures built (tests: a redraw of the same shape builds none)

    @property
    def object(self) -> Any:
        """The figure shown (None before the first chart)."""
        return self.pane.object

    def show(self, chart: Chart) -> None:
        if self.chart is None or self.pane.object is None or chart.shape != self.chart.shape:
            self.pane.object = chart.draw()  # through the pane's parameter: Panel sends it
            self.draws += 1
        else:
            # Bokeh models changed directly must change under the session's document lock: at once where this
            # runs holding it (events dispatched by ``unlocked``, as Panel's own updates are), else on its next tick
            # (a filter's async watcher: changed there, BokehJS never heard of it)
            with unlocked():
                pn.state.execute(partial(_renumber, self.pane.object, chart))
        self.chart = chart


def _renumber(fig: Any, chart: Chart) -> None:
    """Give ``fig``, drawn for a chart of the same shape, ``chart``'s numbers and ranges (what changed only)."""
    sources: list[ColumnDataSource] = []
    for r in fig.renderers:
        if r.data_source not in sources:
            sources.append(r.data_source)
    for source, data in zip(sources, chart.data, strict=True):
        if not _same(source.data, data):
            source.data = dict(data)
    if chart.x_range is not None and (fig.x_range.start, fig.x_range.end) != chart.x_range:
        fig.x_range.update(start=chart.x_range[0], end=chart.x_range[1])
    if chart.factors != list(getattr(fig.y_range, "factors", chart.factors)):
        fig.y_range.factors = list(chart.factors)


def _figure(title: str, currency: str | None, height: int = 280, x_type: str = "datetime", axis: str = "y",
            **kw: Any) -> Any:
    p = figure(title=title, x_axis_type=x_type, height=height, sizing_mode="stretch_width",
               tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above", **kw)
    p.toolbar.logo = None
    p.outline_line_color = None
    p.grid.grid_line_color = "#eef2f7"
    p.title.text_color = "#0f172a"
    p.title.text_font_size = "13px"
    values = p.yaxis if axis == "y" else p.xaxis
    values.formatter = money_ticks(currency) if currency else NumeralTickFormatter(format="0,0.[00]")
    return p


def _legend_outside(p: Any) -> None:
    """The legend right of the plot, never over the data."""
    legend = p.legend[0]
    legend.label_text_font_size = "11px"
    legend.border_line_color = None
    p.add_layout(legend, "right")


def stacked_over_time(frame: pd.DataFrame, by: str, value: str, title: str, currency: str | None,
                      step_s: float) -> Chart:
    """Bars per time bucket stacked by ``by`` (e.g. cost per day, one colour per model)."""
    if frame.empty:
        return Chart(("stacked", title, currency, None), [], lambda _sources: _figure(title, currency))
    wide = frame.pivot_table(index="time", columns=by, values=value, aggfunc="sum", fill_value=0, observed=True)
    names = [str(c) for c in wide.columns]
    data = {"time": wide.index.tz_convert(None).to_numpy(), **{n: wide[c].to_numpy(dtype=float)
                                                                 for n, c in zip(names, wide.columns, strict=True)}}
    pad = np.timedelta64(int(step_s * 1000 * 0.6), "ms")
    x_range = (data["time"][0] - pad, data["time"][-1] + pad)  # one bucket is a bar, not the whole plot

    def build(sources: list[ColumnDataSource]) -> Any:
        p = _figure(title, currency)
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
        fmt = money_tooltip(currency) if currency else "{0,0}"
        renderers = p.vbar_stack(names, x="time", width=step_s * 1000 * 0.85, color=colors, source=sources[0],
                                 legend_label=names)
        for r, n in zip(renderers, names, strict=True):
            p.add_tools(HoverTool(renderers=[r], tooltips=[("", n), ("time", "@time{%F %H:%M}"),
                                                           (value, f"@{{{n}}}{fmt}")],
                                  formatters={"@time": "datetime"}))
        p.y_range.start = 0
        p.x_range = Range1d(*x_range)
        _legend_outside(p)
        p.legend.click_policy = "hide"
        return p

    return Chart(("stacked", title, currency, value, step_s, tuple(names)), [data], build, x_range=x_range)


def lines(frame: pd.DataFrame, ys: list[str], title: str, currency: str | None, colors: list[str] | None = None,
          band: tuple[str, str] | None = None, dashed: tuple[str, ...] = ()) -> Chart:
    """Lines over ``frame["time"]``, optionally a shaded band between two columns."""
    shape = ("lines", title, currency, tuple(ys), tuple(colors or ()), band, dashed, frame.empty)
    if frame.empty:
        return Chart(shape, [], lambda _sources: _figure(title, currency))
    data = {"time": frame["time"].dt.tz_convert(None).to_numpy(),
            **{c: frame[c].to_numpy(dtype=float) for c in ys + (list(band) if band else [])}}

    def build(sources: list[ColumnDataSource]) -> Any:
        p, src = _figure(title, currency), sources[0]
        if band:
            p.varea(x="time", y1=band[0], y2=band[1], source=src, fill_color=ACCENT, fill_alpha=0.12,
                    legend_label="forecast band")
        fmt = money_tooltip(currency) if currency else "{0,0}"
        for i, c in enumerate(ys):
            color = (colors or PALETTE)[i % len(colors or PALETTE)]
            r = p.line("time", c, source=src, line_width=2.5, color=color, legend_label=c.replace("_", " "),
                       line_dash="dashed" if c in dashed else "solid")
            p.add_tools(HoverTool(renderers=[r], tooltips=[(c, f"@{{{c}}}{fmt}"), ("time", "@time{%F %H:%M}")],
                                  formatters={"@time": "datetime"}))
        _legend_outside(p)
        return p

    return Chart(shape, [data], build)


def hbars(frame: pd.DataFrame, cat: str, value: str, title: str, currency: str | None,
          color: str = ACCENT) -> Chart:
    """Horizontal bars, biggest on top (by model, by key)."""
    frame = frame.head(15)
    cats = [str(c) for c in frame[cat]][::-1]
    height = max(160, 60 + 28 * len(cats))
    shape = ("hbars", title, currency, cat, value, color, height, frame.empty)
    if frame.empty:
        return Chart(shape, [], lambda _sources: _figure(title, currency, height=height, x_type="linear",
                                                          axis="x", y_range=cats), factors=cats)

    def build(sources: list[ColumnDataSource]) -> Any:
        p = _figure(title, currency, height=height, x_type="linear", axis="x", y_range=cats)
        p.hbar(y=cat, right=value, height=0.7, color=color, source=sources[0])
        p.x_range.start = 0
        p.xaxis.ticker.desired_num_ticks = 4  # long money labels ($0.000014) ran into each other
        fmt = money_tooltip(currency) if currency else "{0,0}"
        p.add_tools(HoverTool(tooltips=[(cat, f"@{{{cat}}}"), (value, f"@{{{value}}}{fmt}")]))
        return p

    data = {cat: cats, value: frame[value].to_numpy(dtype=float)[::-1]}
    return Chart(shape, [data], build, factors=cats)
