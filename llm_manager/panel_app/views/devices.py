"""Devices: memory, utilisation and temperature per GPU/CPU, who holds what, and a rolling history.

Reads ``devices_info()`` (the manager's last sample, never a fresh poll) at the device interval and streams one
point per new sample into a ColumnDataSource with ``rollover`` so a dashboard left open stays bounded.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, LabelSet
from bokeh.plotting import figure

from .base import PALETTE, View, empty_source, local_ms, time_figure

HISTORY_POINTS = 900  # 15 min at 1 s, 30 min at 2 s
FREE_COLOR, OTHER_COLOR = "#e8f5e9", "#b0bec5"
# a row with several holders is several lines tall: the memory bar keeps one line's height, not the row's
BAR_HEIGHT_CSS = '.tabulator-cell[tabulator-field="memory %"] > div { height: 22px !important; }'
TABLE_COLUMNS = ["device", "type", "memory", "memory %", "utilisation %", "temperature °C", "status", "held by"]


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v)) else math.nan


def _swatch(color: str, text: str) -> str:
    return (f'<span style="display:inline-block;width:12px;height:12px;background:{color};border:1px solid #90a4ae;'
            f'vertical-align:middle"></span> {html.escape(text)}')


def _fmt(v: Any) -> str:
    return "—" if math.isnan(_num(v)) else f"{_num(v):.1f}"


def memory_segments(devices: list[dict[str, Any]], colors: dict[str, str]) -> dict[str, list[Any]]:
    """Stacked bar segments per device: each model's reservation, other used memory, then free memory."""
    seg: dict[str, list[Any]] = {k: [] for k in ("device", "left", "right", "color", "label", "mb", "text")}

    scale = 1000.0 / max([_num(d.get("total_memory_mb")) or 1.0 for d in devices] or [1.0])  # px per MB, roughly

    def add(dev: str, left: float, mb: float, color: str, label: str, text: str = "") -> float:
        if mb <= 0:
            return left
        seg["device"].append(dev)
        seg["left"].append(left)
        seg["right"].append(left + mb)
        seg["color"].append(color)
        seg["label"].append(label)
        seg["mb"].append(round(mb))
        seg["text"].append(text if scale * mb >= 7 * len(text) + 8 else "")  # only where it fits
        return left + mb

    for d in devices:
        total, used = _num(d.get("total_memory_mb")) or 0.0, _num(d.get("used_memory_mb")) or 0.0
        held = 0.0
        left = 0.0
        for h in d.get("models", []):
            colors.setdefault(h["model"], PALETTE[len(colors) % len(PALETTE)])
            left = add(d["name"], left, h["memory_mb"], colors[h["model"]], f"{h['model']} ({h['state']})",
                       h["model"])
            held += h["memory_mb"]
        left = add(d["name"], left, max(0.0, used - held), OTHER_COLOR, "other")
        add(d["name"], left, max(0.0, total - max(used, held)), FREE_COLOR, "free")
    return seg


def device_rows(devices: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for d in devices:
        total, used = _num(d.get("total_memory_mb")), _num(d.get("used_memory_mb"))
        pct = 100.0 * used / total if total else math.nan
        held = "\n".join(f"{h['model']} {h['memory_mb']:,} MB ({h['state']})" for h in d.get("models", []))
        rows.append({
            "device": d["name"], "type": d.get("device_type", ""),
            "memory": f"{used:,.0f} / {total:,.0f} MB", "memory %": round(pct, 1),
            "utilisation %": _fmt(d.get("usage_percentage")), "temperature °C": _fmt(d.get("temperature_celsius")),
            "held by": held or "—", "status": "online" if d.get("online", True) else f"offline: {d.get('offline_reason')}",
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


class DevicesView(View):
    title = "Devices"

    def __init__(self, source: Any):
        super().__init__(source)
        self.period_ms = max(500, int(1000 * getattr(source, "device_interval", 2.0)))
        self.devices: list[dict[str, Any]] = []
        self.colors: dict[str, str] = {}
        self._last_ts: float | None = None
        self._names: list[str] = []
        self._bars: dict[str, list[Any]] | None = None
        self._pending: dict[str, list[float]] = {"time": []}
        # "held by" comes last and takes the rest of the width, one holder per line, wrapped: it is the longest
        # text (several models on one GPU) and was cut off at a fixed width
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=TABLE_COLUMNS), disabled=True, show_index=False, sizing_mode="stretch_width",
            sortable=False, layout="fit_data_stretch",
            formatters={"memory %": {"type": "progress", "max": 100, "legend": True,
                                     "color": ["#43a047", "#fb8c00", "#e53935"]},
                        "status": {"type": "textarea"}, "held by": {"type": "textarea"}},
            widths={"device": 200, "type": 60, "memory": 150, "memory %": 120, "utilisation %": 100,
                    "temperature °C": 110, "status": 100},  # narrow enough beside the filters' sidebar
            stylesheets=[BAR_HEIGHT_CSS])
        self.bars = ColumnDataSource(memory_segments([], self.colors))
        self.bar_legend = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10, 0, 10))
        self.bar_fig = figure(y_range=FactorRange(), height=120, sizing_mode="stretch_width", tools="save",
                              toolbar_location=None, min_border_left=24)
        self.bar_fig.hbar(y="device", left="left", right="right", height=0.7, color="color", line_color="white",
                          source=self.bars)
        self.bar_fig.add_layout(LabelSet(x="left", y="device", text="text", source=self.bars, x_offset=4,
                                         y_offset=-7, text_font_size="11px", text_color="white",
                                         text_font_style="bold"))
        self.bar_fig.add_tools(HoverTool(tooltips=[("device", "@device"), ("", "@label"), ("MB", "@mb{0,0}")]))
        self.bar_fig.xaxis.axis_label = "MB"
        self.history = empty_source(["time"])
        self.mem_fig = time_figure("Memory used", "% of total")
        self.util_fig = time_figure("Utilisation", "%")
        self.temp_fig = time_figure("Temperature", "°C", zero=False)
        self.legend = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))

    def _setup_history(self, devices: list[dict[str, Any]]) -> None:
        """One line per device per chart; rebuilt only if the set of devices changes."""
        self._names = [d["name"] for d in devices]
        cols = {"time": []} | {f"{k}_{i}": [] for i in range(len(devices)) for k in ("mem", "util", "temp")}
        self.history.data = cols
        for fig, key in ((self.mem_fig, "mem"), (self.util_fig, "util"), (self.temp_fig, "temp")):
            fig.renderers = []
            for legend in fig.legend:
                legend.items = []
            for i, name in enumerate(self._names):
                fig.line("time", f"{key}_{i}", source=self.history, color=PALETTE[i % len(PALETTE)], line_width=2,
                         name=name)
        self.legend.object = "Lines: " + " &nbsp; ".join(
            f'<span style="color:{PALETTE[i % len(PALETTE)]};font-weight:700">━ {html.escape(n)}</span>'
            for i, n in enumerate(self._names))

    async def _refresh(self) -> None:
        info = await self.source.devices()
        devices = info.get("devices", [])
        self.devices = devices
        if [d["name"] for d in devices] != self._names:
            self._setup_history(devices)
            self.bar_fig.y_range.factors = list(reversed(self._names))
            self.bar_fig.height = 70 + 36 * max(1, len(devices))
        if not self.shown:  # hidden: keep the history's points for when the tab is shown; send nothing
            self._keep_point(info, devices)
            return
        bars = memory_segments(devices, self.colors)
        if bars != self._bars:  # an unchanged sample sends nothing to the browser
            self._bars = bars
            self.bars.data = bars
        held = sorted({h["model"] for d in devices for h in d.get("models", [])})
        self.bar_legend.object = "Memory per device: " + " &nbsp; ".join(
            [_swatch(self.colors[m], m) for m in held] + [_swatch(OTHER_COLOR, "other use"), _swatch(FREE_COLOR, "free")])
        rows = device_rows(devices)
        if not rows.equals(self.table.value):
            self.table.value = rows
        self._keep_point(info, devices)
        if self._pending["time"]:
            self.history.stream(self._pending, rollover=HISTORY_POINTS)
            self._pending = {"time": []}

    def _keep_point(self, info: dict[str, Any], devices: list[dict[str, Any]]) -> None:
        """Queue the sample's history point (sent with the next shown refresh)."""
        ts = info.get("ts")
        if not ts or ts == self._last_ts:
            return
        self._last_ts = ts
        if set(self._pending) != {"time", *(f"{k}_{i}" for i in range(len(devices)) for k in ("mem", "util", "temp"))}:
            self._pending = {"time": []}
        self._pending.setdefault("time", []).append(local_ms(ts))
        for i, d in enumerate(devices):
            total = _num(d.get("total_memory_mb"))
            self._pending.setdefault(f"mem_{i}", []).append(
                100.0 * _num(d.get("used_memory_mb")) / total if total else math.nan)
            self._pending.setdefault(f"util_{i}", []).append(_num(d.get("usage_percentage")))
            self._pending.setdefault(f"temp_{i}", []).append(_num(d.get("temperature_celsius")))
        for col in self._pending.values():
            del col[:-HISTORY_POINTS]

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.error, self.bar_legend, pn.pane.Bokeh(self.bar_fig, margin=(0, 12), sizing_mode="stretch_width"),
            self.table, self.legend,
            pn.Row(self.mem_fig, self.util_fig, self.temp_fig, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
