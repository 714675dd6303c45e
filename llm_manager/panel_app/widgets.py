"""Building blocks of the analytics views: exportable tables, KPI cards and the few chart shapes they use.

Tables are Tabulator widgets, sortable, with human formatters (money, thousands) and two download buttons that
export exactly what the table holds (CSV always; Parquet when pyarrow or fastparquet is installed).
"""

from __future__ import annotations

import html
import importlib.util
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d
from bokeh.plotting import figure

from .format import (
    ACCENT,
    INT_COLUMN,
    MS_COLUMN,
    PALETTE,
    PCT_COLUMN,
    money_column,
    money_digits,
    money_ticks,
    money_tooltip,
)

PARQUET = any(importlib.util.find_spec(m) is not None for m in ("pyarrow", "fastparquet"))
CARD_CSS = """
:host { --accent: #2563eb; }
.kpi { background: #fff; border: 1px solid #e2e8f0; border-radius: 10px; padding: 10px 16px; min-width: 150px;
       box-shadow: 0 1px 2px rgba(15,23,42,.06); }
.kpi .label { color: #64748b; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.kpi .value { color: #0f172a; font-size: 24px; font-weight: 650; margin-top: 2px; white-space: nowrap; }
.kpi .sub { color: #64748b; font-size: 12px; margin-top: 2px; }
"""


def kpi(label: str, value: str, sub: str = "", color: str = "#0f172a") -> str:
    """One KPI card's HTML (label, big value, a small line under it)."""
    return (f'<div class="kpi"><div class="label">{html.escape(label)}</div>'
            f'<div class="value" style="color:{color}">{html.escape(value)}</div>'
            f'<div class="sub">{html.escape(sub)}</div></div>')


def kpi_row(cards: list[str]) -> str:
    return f'<style>{CARD_CSS}</style><div style="display:flex;gap:12px;flex-wrap:wrap">{"".join(cards)}</div>'


def column_formatters(frame: pd.DataFrame, currency: str) -> dict[str, Any]:
    """Money for cost-like columns, ms for latencies, % for shares, thousands separators for counts."""
    out: dict[str, Any] = {}
    for col in frame.columns:
        name = str(col)
        if name in ("cost", "billed", "repriced", "difference") or name.endswith("_cost"):
            values = np.abs(frame[col].to_numpy(dtype=float))
            nonzero = values[np.isfinite(values) & (values > 0)]
            out[name] = {**money_column(currency),  # one number of decimals per column: enough for its smallest
                         "precision": money_digits(float(nonzero.min())) if nonzero.size else 2}
        elif name.endswith("_ms") or "_ms_p" in name:
            out[name] = MS_COLUMN
        elif name in ("share", "change", "error_rate"):
            out[name] = PCT_COLUMN
        elif pd.api.types.is_integer_dtype(frame[col]) and name not in ("status",):
            out[name] = INT_COLUMN
        elif name.endswith("_s") or name == "seconds":
            out[name] = {"type": "money", "decimal": ".", "thousand": ",", "precision": 1, "symbol": " s",
                         "symbolAfter": True}
    return out


def title(column: str) -> str:
    """A column's header without the unit its cells already show: "total_ms_p95" -> "total p95"."""
    words = [w for w in column.split("_") if w not in ("ms", "s")]
    return " ".join("TTFT" if w == "ttft" else w for w in words) or column


def _for_display(frame: pd.DataFrame) -> pd.DataFrame:
    """Shares as percentages, times as text: what the formatters expect."""
    out = frame.copy()
    for col in ("share", "change", "error_rate"):
        if col in out.columns:
            out[col] = out[col] * 100.0
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime("%Y-%m-%d %H:%M")
        elif pd.api.types.is_float_dtype(out[col]) and out[col].isna().any():
            out[col] = out[col].astype(object).where(out[col].notna(), None)  # an empty cell, not "NaN"
    return out


class ExportTable:
    """A sortable table with "CSV" and "Parquet" download buttons exporting its current frame."""

    def __init__(self, name: str, currency: Callable[[], str], height: int | None = None, selectable: bool = False):
        self.name = name
        self.currency = currency
        self.frame = pd.DataFrame()
        self._kinds: tuple | None = None  # the shown columns' dtype kinds: a change rebuilds the columns
        self.table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, sortable=True,
                                          sizing_mode="stretch_width", layout="fit_data_stretch",
                                          **({"height": height} if height else {"max_height": 420}),
                                          selectable=1 if selectable else False, pagination=None,
                                          # every row in the DOM: a virtual renderer filled while its tab is
                                          # hidden measures zero height and shows no rows when the tab opens
                                          configuration={"renderVertical": "basic"},
                                          css_classes=[f"table-{name}"])
        self.csv = pn.widgets.FileDownload(callback=self._csv, filename=f"{name}.csv", label="⤓ CSV",
                                           button_type="light", width=90, css_classes=[f"export-{name}-csv"])
        self.parquet = pn.widgets.FileDownload(
            callback=self._parquet, filename=f"{name}.parquet", label="⤓ Parquet", button_type="light", width=110,
            disabled=not PARQUET, css_classes=[f"export-{name}-parquet"],
            description=None if PARQUET else "Parquet export needs pyarrow (pip install pyarrow)")

    def _csv(self) -> io.BytesIO:
        return io.BytesIO(self.frame.to_csv(index=False).encode())

    def _parquet(self) -> io.BytesIO:
        buf = io.BytesIO()
        self.frame.to_parquet(buf, index=False)
        buf.seek(0)
        return buf

    def update(self, frame: pd.DataFrame) -> None:
        """Show ``frame``; what did not change is not sent again (each open session redraws every 30 s, and a
        Tabulator given new formatters or titles rebuilds its columns on both sides)."""
        self.frame = frame.reset_index(drop=True)
        shown = _for_display(self.frame)
        kinds = tuple((str(c), shown[c].dtype.kind) for c in shown.columns)
        numeric = {c: "right" for c in shown.columns if pd.api.types.is_numeric_dtype(shown[c])}
        settings = {"formatters": column_formatters(self.frame, self.currency()),
                    "titles": {c: title(str(c)) for c in shown.columns}, "text_align": numeric,
                    "header_align": numeric}
        changed = {k: v for k, v in settings.items() if getattr(self.table, k) != v}
        if changed:
            self.table.param.update(**changed)
        if not (kinds == self._kinds and shown.equals(self.table.value)):
            self.table.value = shown
        if kinds != self._kinds and self._kinds is not None and [k[0] for k in kinds] == [k[0] for k in self._kinds]:
            # same columns, other types (an empty frame's float "model" column, then names): Tabulator keeps the
            # columns' cell formatters when only the data changes, and showed every model as "NaN"
            self.table.param.trigger("formatters")
        self._kinds = kinds

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(self.table, pn.Row(pn.Spacer(sizing_mode="stretch_width"), self.csv, self.parquet,
                                            sizing_mode="stretch_width"), sizing_mode="stretch_width")


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


def stacked_over_time(frame: pd.DataFrame, by: str, value: str, title: str, currency: str | None,
                      step_s: float) -> Any:
    """Bars per time bucket stacked by ``by`` (e.g. cost per day, one colour per model)."""
    p = _figure(title, currency)
    if frame.empty:
        return p
    wide = frame.pivot_table(index="time", columns=by, values=value, aggfunc="sum", fill_value=0, observed=True)
    names = [str(c) for c in wide.columns]
    data = {"time": wide.index.tz_convert(None).to_numpy(), **{n: wide[c].to_numpy(dtype=float)
                                                                 for n, c in zip(names, wide.columns, strict=True)}}
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    fmt = money_tooltip(currency) if currency else "{0,0}"
    renderers = p.vbar_stack(names, x="time", width=step_s * 1000 * 0.85, color=colors, source=ColumnDataSource(data),
                             legend_label=names)
    for r, n in zip(renderers, names, strict=True):
        p.add_tools(HoverTool(renderers=[r], tooltips=[("", n), ("time", "@time{%F %H:%M}"), (value, f"@{{{n}}}{fmt}")],
                              formatters={"@time": "datetime"}))
    p.y_range.start = 0
    first, last = data["time"][0], data["time"][-1]
    pad = np.timedelta64(int(step_s * 1000 * 0.6), "ms")
    p.x_range = Range1d(first - pad, last + pad)  # one bucket is a bar, not the whole plot
    _legend_outside(p)
    p.legend.click_policy = "hide"
    return p


def _legend_outside(p: Any) -> None:
    """The legend right of the plot, never over the data."""
    legend = p.legend[0]
    legend.label_text_font_size = "11px"
    legend.border_line_color = None
    p.add_layout(legend, "right")


def lines(frame: pd.DataFrame, ys: list[str], title: str, currency: str | None, colors: list[str] | None = None,
          band: tuple[str, str] | None = None, dashed: tuple[str, ...] = ()) -> Any:
    """Lines over ``frame["time"]``, optionally a shaded band between two columns."""
    p = _figure(title, currency)
    if frame.empty:
        return p
    data = {"time": frame["time"].dt.tz_convert(None).to_numpy(),
            **{c: frame[c].to_numpy(dtype=float) for c in ys + (list(band) if band else [])}}
    src = ColumnDataSource(data)
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


def hbars(frame: pd.DataFrame, cat: str, value: str, title: str, currency: str | None, color: str = ACCENT) -> Any:
    """Horizontal bars, biggest on top (by model, by key)."""
    frame = frame.head(15)
    cats = [str(c) for c in frame[cat]][::-1]
    p = _figure(title, currency, height=max(160, 60 + 28 * len(cats)), x_type="linear", axis="x", y_range=cats)
    if frame.empty:
        return p
    src = ColumnDataSource({cat: cats, value: frame[value].to_numpy(dtype=float)[::-1]})
    p.hbar(y=cat, right=value, height=0.7, color=color, source=src)
    p.x_range.start = 0
    p.xaxis.ticker.desired_num_ticks = 4  # long money labels ($0.000014) ran into each other
    fmt = money_tooltip(currency) if currency else "{0,0}"
    p.add_tools(HoverTool(tooltips=[(cat, f"@{{{cat}}}"), (value, f"@{{{value}}}{fmt}")]))
    return p


def _shape(fig: Any) -> tuple:
    """What a chart looks like apart from its numbers: its title, size, glyphs (kind, fields, colours) and legend."""
    glyphs = tuple((type(r.glyph).__name__, tuple(sorted((k, _plain(v)) for k, v in r.glyph.properties_with_values(
        include_defaults=False).items()))) for r in fig.renderers)
    legend = tuple(item.label.get("value") if isinstance(item.label, dict) else repr(item.label)
                   for lg in fig.legend for item in lg.items)
    return fig.title.text, fig.height, type(fig.x_range).__name__, type(fig.y_range).__name__, glyphs, legend


def _plain(value: Any) -> str:
    """A glyph property as text without model ids (a stacked bar's ``Stack`` expression is a new model each time)."""
    expr = getattr(value, "expr", None)
    if expr is not None and hasattr(expr, "properties_with_values"):
        return f"{type(expr).__name__}{sorted(expr.properties_with_values(include_defaults=False).items())}"
    return repr(value)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(len(a[k]) == len(b[k]) and np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
                                        for k in a)


def show_chart(pane: Any, fig: Any) -> None:
    """Show ``fig`` in ``pane``: a chart of the same shape as the one shown only gets its numbers and ranges (a
    few bytes to the browser, no new document models); another shape replaces it. Every open session redraws its
    charts each 30 s, so replacing them all each time cost the proxy's loop most of a core with five sessions."""
    old = pane.object
    if old is None or _shape(old) != _shape(fig):
        pane.object = fig
        return
    sources: dict[str, tuple[Any, Any]] = {}
    for was, now in zip(old.renderers, fig.renderers, strict=True):
        sources.setdefault(was.data_source.id, (was.data_source, now.data_source))
    for was, now in sources.values():
        if not _same(was.data, now.data):
            was.data = dict(now.data)
    for attr in ("x_range", "y_range"):
        was, now = getattr(old, attr), getattr(fig, attr)
        if hasattr(now, "factors"):
            if list(was.factors) != list(now.factors):
                was.factors = list(now.factors)
        elif hasattr(now, "start") and type(now).__name__ == "Range1d":
            if (was.start, was.end) != (now.start, now.end):
                was.update(start=now.start, end=now.end)


def finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]
