"""Throughput and latency over time: requests/s, tokens/s, p50/p95 latency and TTFT, overall or per model.

Every second it reads the manager's 5 s throughput snapshot and the last minute of in-memory usage records,
and appends one point per model to bounded buffers; the charts stream the chosen model's buffer (rollover).
The sample is taken once per second per manager and shared by every open session (five sessions cost one).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import pandas as pd
import panel as pn

from ..frames import latency_stats
from ..shared import shared, source_key
from .base import View, empty_source, local_ms, time_figure

ALL = "all models"
POINTS = 900  # 15 min of 1 s points per model
WINDOW_S = 60.0  # latency percentiles over the last minute...
MAX_RECORDS = 2000  # ...or its newest 2000 requests, whichever is fewer: enough for a p95, cheap each second
SERIES = ["time", "requests_per_s", "tokens_per_s", "p50_ms", "p95_ms", "ttft_p50_ms", "ttft_p95_ms"]
TABLE_COLUMNS = ["model", "requests/s", "tokens/s", "requests (1 min)", "p50 ms", "p95 ms", "TTFT p50 ms",
                 "TTFT p95 ms"]


SHARE_S = 0.9  # sessions ticking within this of a sample reuse it


async def shared_sample(source: Any, share: bool = True) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """(throughput snapshot, latency stats of the last minute); with ``share``, read at most once per ``SHARE_S``
    per manager (the sessions' timers), else read now (an explicit refresh)."""
    async def read() -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
        tp = await source.throughput()
        records = await source.recent_usage(MAX_RECORDS, since=time.time() - WINDOW_S)
        return tp, latency_stats(records)

    return await shared(("throughput", *source_key(source)), SHARE_S if share else 0.0, read)


def _r(v: float) -> float:
    return round(v, 1) if not math.isnan(v) else math.nan


class ThroughputView(View):
    title = "Throughput & latency"

    def __init__(self, source: Any):
        super().__init__(source)
        self.buffers: dict[str, deque[dict[str, float]]] = {}
        self._ticking = False
        self._rebuild = False
        self.last_traffic: dict[str, float] = {}  # model -> when it last had requests in the window
        self.model = pn.widgets.Select(label="Show", options=[ALL], value=ALL, width=240)
        self.model.param.watch(self._on_model, "value")
        self.series = empty_source(SERIES)
        self.rate_fig = time_figure("Requests per second (5 s window)", "requests/s")
        self.rate_fig.line("time", "requests_per_s", source=self.series, line_width=2, color="#1f77b4",
                           name="requests/s")
        self.tok_fig = time_figure("Tokens per second (prompt + completion, 5 s window)", "tokens/s")
        self.tok_fig.line("time", "tokens_per_s", source=self.series, line_width=2, color="#2ca02c",
                          name="tokens/s")
        self.lat_fig = time_figure(f"Latency over the last {WINDOW_S:.0f} s (successful requests)", "ms")
        for col, color, dash, label in (("p50_ms", "#9467bd", "solid", "total p50"),
                                        ("p95_ms", "#9467bd", "dashed", "total p95"),
                                        ("ttft_p50_ms", "#ff7f0e", "solid", "TTFT p50"),
                                        ("ttft_p95_ms", "#ff7f0e", "dashed", "TTFT p95")):
            self.lat_fig.line("time", col, source=self.series, line_width=2, color=color, line_dash=dash,
                              legend_label=label, name=label)
        self.lat_fig.add_layout(self.lat_fig.legend[0], "right")  # beside the plot, never over the lines
        # columns as wide as their data, numbers and their headers both right-aligned: a stretched last column
        # put its numbers a screen away from its header
        numeric = {c: "right" for c in TABLE_COLUMNS[1:]}
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=TABLE_COLUMNS), disabled=True, show_index=False,
                                          sizing_mode="stretch_width", layout="fit_data_fill", sortable=False,
                                          container_popup=False,  # no 1-px spacer column (no editors)
                                          text_align=numeric, header_align=numeric)

    async def tick(self) -> None:
        """The timer's refresh: the sample other sessions took this second will do."""
        self._ticking = True
        await self.refresh(wait=False)

    def show(self, shown: bool) -> None:
        """The tab shown again: the next tick draws the history buffered while it was hidden."""
        self._rebuild = self._rebuild or (shown and not self.shown)
        self.shown = shown

    def _on_model(self, _event: Any) -> None:
        """Show the chosen model's history at once (it has been buffered all along)."""
        buf = self.buffers.get(self.model.value, deque())
        self.series.data = {c: [p[c] for p in buf] for c in SERIES}

    async def _refresh(self) -> None:
        now = time.time()
        share, self._ticking = self._ticking, False
        tp, stats = await shared_sample(self.source, share)
        by_model = tp.get("by_model", {})
        active = set(by_model) | set(stats) - {"all"}
        for key in active:
            self.last_traffic[key] = now
        for key in [k for k, t in self.last_traffic.items() if now - t > POINTS]:  # idle 15 min: forget it
            del self.last_traffic[key]
            self.buffers.pop(key, None)
        names = sorted(self.last_traffic)
        rows = []
        for key in [ALL, *names]:
            rates = tp if key == ALL else by_model.get(key, {})
            lat = stats.get("all" if key == ALL else key, {})
            point = {"time": local_ms(now), "requests_per_s": rates.get("requests_per_s", 0.0),
                     "tokens_per_s": rates.get("tokens_per_s", 0.0)}
            for c in SERIES[3:]:
                point[c] = lat.get(c, math.nan)
            buf = self.buffers.setdefault(key, deque(maxlen=POINTS))
            buf.append(point)
            if key == self.model.value and self.shown and not self._rebuild:  # hidden: buffered only
                self.series.stream({c: [point[c]] for c in SERIES}, rollover=POINTS)
            rows.append({"model": key, "requests/s": round(point["requests_per_s"], 2),
                         "tokens/s": round(point["tokens_per_s"], 1), "requests (1 min)": int(lat.get("requests", 0)),
                         "p50 ms": _r(point["p50_ms"]), "p95 ms": _r(point["p95_ms"]),
                         "TTFT p50 ms": _r(point["ttft_p50_ms"]), "TTFT p95 ms": _r(point["ttft_p95_ms"])})
        if self._rebuild and self.shown:  # shown again: the whole buffer at once
            self._rebuild = False
            self._on_model(None)
        options = [ALL, *names]
        if options != list(self.model.options):
            self.model.options = options
        if self.shown:  # hidden: no table built at all (each open session ticks this every second)
            frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
            if not frame.equals(self.table.value):
                self.table.value = frame

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.error,
            pn.Row(self.model, pn.pane.Markdown("Rates cover the last 5 s; latency percentiles the last minute. "
                                                "Table: current values per model.", styles={"color": "#616161"})),
            self.table,
            pn.Row(self.rate_fig, self.tok_fig, sizing_mode="stretch_width"),
            self.lat_fig, sizing_mode="stretch_width")
