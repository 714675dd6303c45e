"""The analysis tabs: usage and cost over time with drill-down, latency, cold starts, errors, forecast and budget,
what-if pricing and alert history, all driven by the sidebar's one set of filters.

Rows of the date range (and the current month, for the forecast) are loaded from the source once per range or
reload; a filter change then re-runs :func:`..analysis.analyse` in a worker thread and redraws.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import pandas as pd
import panel as pn

from ...accounting import analytics
from ...accounting.pricing import period_start
from ..analysis import Analysis, Filters, analyse, options, parse_price_table, price_rows, select, whatif
from ..charts import ChartPane, hbars, lines, stacked_over_time
from ..filters import FilterBar
from ..format import BAD, GOOD, WARN, compact, count, money, ms, percent
from ..shared import shared, source_key
from ..widgets import ExportTable, kpi, kpi_row

log = logging.getLogger(__name__)
STEP_S = {"h": 3600, "D": 86400, "W": 7 * 86400}
SHARE_S = 20.0  # a reload within this of another session's (same store and range) takes its rows
TABS = ("Usage & cost", "Latency", "Cold starts", "Errors", "Forecast & budget", "What-if pricing", "Alerts")


def _stretch(*objs: Any, **kw: Any) -> pn.Column:
    return pn.Column(*objs, sizing_mode="stretch_width", **kw)


class Insights:
    """The filters, the loaded rows and every analysis view of one session."""

    def __init__(self, source: Any):
        self.source = source
        self.bar = FilterBar()
        self.raw = analytics.prepare(pd.DataFrame(columns=list(analytics.ANALYSIS_COLUMNS)))
        self.events: pd.DataFrame | None = None
        self.alerts: pd.DataFrame | None = None
        self.budget: float | None = None
        self.loaded: tuple[float | None, float | None] | None = None
        self.result: Analysis | None = None
        self.refreshes = 0
        self._drawn: tuple | None = None
        self._lock = asyncio.Lock()
        self.error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.kpis = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["kpis-usage"])
        self.scope = pn.pane.HTML("", sizing_mode="stretch_width", styles={"color": "#64748b"})
        self.cost_time = ChartPane()
        self.tokens_time = ChartPane()
        self.model_bars = ChartPane()
        self.key_bars = ChartPane()
        self.by_model = ExportTable("by_model", lambda: self.currency, selectable=True)
        self.by_key = ExportTable("by_key", lambda: self.currency, selectable=True)
        self.drill = ExportTable("drill_down", lambda: self.currency)
        self.drill_title = pn.pane.HTML("<i>Select a row of either table to see its breakdown.</i>")
        self.over_time = ExportTable("over_time", lambda: self.currency, height=260)
        self.latency = ExportTable("latency", lambda: self.currency)
        self.latency_bars = ChartPane()
        self.cold_kpis = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["kpis-cold"])
        self.cold = ExportTable("cold_starts", lambda: self.currency)
        self.starts = ExportTable("starts", lambda: self.currency, height=260)
        self.err_kpis = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["kpis-errors"])
        self.errors = ExportTable("errors_by_status", lambda: self.currency)
        self.errors_time = ChartPane()
        self.fc_kpis = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["kpis-forecast"])
        self.burn = ChartPane()
        self.burn_text = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.prices = pn.widgets.Tabulator(pd.DataFrame(columns=["model", "input", "output", "per"]),
                                           show_index=False, sizing_mode="stretch_width", max_height=300,
                                           layout="fit_columns", css_classes=["price-editor"],
                                           editors={"model": None}, widths={"model": 220, "input": 150,
                                                                            "output": 150, "per": 150},
                                           titles={"input": "input price ✎", "output": "output price ✎",
                                                   "per": "per tokens ✎"})
        self.reprice_button = pn.widgets.Button(name="Reprice the selection", button_type="primary",
                                                css_classes=["reprice"])
        self.reprice_button.on_click(self._on_reprice)
        self.whatif_note = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.whatif_kpis = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["kpis-whatif"])
        self.whatif = ExportTable("whatif", lambda: self.currency)
        self.whatif_chart = ChartPane()
        self.alert_table = ExportTable("alerts", lambda: self.currency, height=360)
        self.by_model.table.param.watch(self._drill_model, "selection")
        self.by_key.table.param.watch(self._drill_key, "selection")
        self.bar.on_change(self._on_filters)
        self.bar.refresh.on_click(self._on_reload)

    # async watchers: Panel runs them on the session's loop, holding its document, so what they change is sent
    async def _on_filters(self, _event: Any) -> None:
        await self.refresh(reload=False)

    async def _on_reload(self, _event: Any) -> None:
        await self.refresh(reload=True)

    async def _on_reprice(self, _event: Any) -> None:
        await self.reprice()

    @property
    def currency(self) -> str:
        return getattr(self.source, "currency", "USD") or "USD"

    # ------------------------------------------------------------ data

    async def _load(self, f: Filters, now: float, force: bool, share: bool = False) -> None:
        since = min(f.since or 0.0, period_start(now)) if f.since is not None else None
        span = (since, f.until)
        if not force and self.loaded == span:
            return
        until = f.until if (f.until or 0) < now else None

        async def read() -> tuple[pd.DataFrame, Any, Any, float | None]:
            raw = await asyncio.to_thread(analytics.prepare, await self.source.requests_frame(since, until))
            return (raw, await self.source.events_frame(since, None), await self.source.alerts_frame(since, None),
                    await self.source.budget())

        # forced reloads (the button, the 30 s tick) of every open session on one store share one read
        self.raw, self.events, self.alerts, self.budget = await shared(
            ("analysis", *source_key(self.source), since, until), SHARE_S if share else 0.0, read)
        self.loaded = span
        if not len(self.prices.value):
            models = [str(m) for m in self.raw["model"].cat.categories] if len(self.raw) else []
            self.prices.value = price_rows(await self.source.prices(), models)

    async def refresh(self, reload: bool = True, share: bool = False) -> None:
        """Load what the range needs (always when ``reload``; ``share``: rows another session read in the last
        20 s will do) and redraw every view, unless neither the rows nor the filters changed; one pass at a time."""
        async with self._lock:
            try:
                now = time.time()
                f = self.bar.filters()
                await self._load(f, now, reload, share)
                seen = (id(self.raw), id(self.events), id(self.alerts), self.budget, f,
                        int(now // 3600))  # the forecast moves with the clock: redraw hourly at least
                if seen == self._drawn:
                    return
                self._drawn = seen
                self.bar.set_options(options(self.raw))
                raw, events, alerts, budget = self.raw, self.events, self.alerts, self.budget
                # sessions showing the same rows through the same filters (the timer's refresh) share one analysis
                self.result = await shared(
                    ("analyse", *source_key(self.source), id(raw), len(raw), id(events), id(alerts), budget, f),
                    SHARE_S if share else 0.0,
                    lambda: asyncio.to_thread(analyse, raw, f, now, events, alerts, budget))
                self.draw(self.result)
                self.error.visible = False
                self.refreshes += 1
            except Exception as exc:  # shown, never raised into the periodic callback
                log.debug("analysis refresh failed", exc_info=True)
                self.error.object = f"**Analysis:** could not read data: {type(exc).__name__}: {exc}"
                self.error.visible = True

    # ------------------------------------------------------------ drawing

    def draw(self, a: Analysis) -> None:
        """Every tab at once. (Drawing only the shown tab and the others when shown raced BokehJS building the
        tab's views: "Cannot read properties of null (reading 'firstChild')".)"""
        for tab in TABS:
            self._draw_tab(tab, a)

    def _draw_tab(self, tab: str, a: Analysis) -> None:
        {TABS[0]: self._draw_usage, TABS[1]: self._draw_latency, TABS[2]: self._draw_cold,
         TABS[3]: self._draw_errors, TABS[4]: self._draw_forecast, TABS[5]: lambda a: None,
         TABS[6]: self._draw_alerts}[tab](a)

    def _draw_usage(self, a: Analysis) -> None:
        cur, t, f = self.currency, a.totals, a.filters
        step = STEP_S.get(f.freq, 86400)
        self.scope.object = (f"{count(t['requests'])} requests, {f.describe()} — from "
                             f"{getattr(self.source, 'usage_origin', 'the manager')}")
        self.kpis.object = kpi_row([
            kpi("Cost", money(t["cost"], cur), "billed in the selection"),
            kpi("Requests", count(t["requests"]), f"{count(t['errors'])} errors"),
            kpi("Tokens", compact(t["tokens"]), f"{count(t['tokens'])} in all"),
            kpi("Latency p50 / p95", f"{ms(t['p50_ms'])} / {ms(t['p95_ms'])}", f"TTFT p50 {ms(t['ttft_p50_ms'])}"),
            kpi("Error rate", percent(t["error_rate"]), "status ≥ 400 or an error",
                BAD if t["error_rate"] > 0.05 else "#0f172a"),
            kpi("Month-end forecast", money(a.forecast["month_end_forecast"], cur),
                f"{money(a.forecast['forecast_low'], cur)} – {money(a.forecast['forecast_high'], cur)}")])
        priced = t["cost"] > 0
        value, money_in = ("cost", cur) if priced else ("total_tokens", None)
        self.cost_time.show(stacked_over_time(
            a.over_time_by_model, "model", value, "Cost over time by model" if priced else
            "Tokens over time by model (no prices configured)", money_in, step))
        self.tokens_time.show(stacked_over_time(a.over_time_by_model, "model", "requests",
                                                "Requests over time by model", None, step))
        self.model_bars.show(hbars(a.by_model, "model", value, "By model", money_in))
        self.key_bars.show(hbars(a.by_key, "key_id", value, "By API key", money_in, color="#8b5cf6"))
        self.by_model.update(a.by_model)
        self.by_key.update(a.by_key.rename(columns={"key_id": "key"}))
        self.over_time.update(a.over_time)
        self._drill(None, None)

    def _draw_latency(self, a: Analysis) -> None:
        self.latency.update(a.latency.drop(columns=[c for c in a.latency.columns if c.startswith("start_ms")]))
        lat = a.latency.rename(columns={"ttft_ms_p50": "TTFT p50", "ttft_ms_p95": "TTFT p95"})
        self.latency_bars.show(hbars(lat.fillna(0), "model", "total_ms_p95", "Total latency p95 per model (ms)",
                                     None, color="#f59e0b"))

    def _draw_cold(self, a: Analysis) -> None:
        waited = int(a.cold["waited_requests"].sum()) if len(a.cold) else 0
        ready = a.starts[a.starts["outcome"] == "ready"]["seconds"]
        self.cold_kpis.object = kpi_row([
            kpi("Model starts", count(len(a.starts)), f"{count(len(ready))} became ready"),
            kpi("Load time p50", ms(ready.median() * 1000) if len(ready) else "—", "start → ready"),
            kpi("Requests that waited", count(waited), "for a model to start")])
        self.cold.update(a.cold)
        starts = a.starts.copy()
        starts["time"] = pd.to_datetime(starts["ts"], unit="s", utc=True)
        self.starts.update(starts[["time", "model", "outcome", "seconds", "detail"]])

    def _draw_errors(self, a: Analysis) -> None:
        t = a.totals
        self.err_kpis.object = kpi_row([
            kpi("Errors", count(t["errors"]), percent(t["error_rate"]) + " of requests",
                BAD if t["errors"] else GOOD)])
        self.errors.update(a.errors)
        errors = a.errors_over_time.assign(errors=a.errors_over_time["errors"].astype(float))
        self.errors_time.show(lines(errors, ["errors"], "Errors over time", None, colors=[BAD]))

    def _draw_alerts(self, a: Analysis) -> None:
        alerts = a.alerts.copy()
        alerts.insert(0, "time", pd.to_datetime(alerts["ts"], unit="s", utc=True))
        self.alert_table.update(alerts.drop(columns="ts"))

    def _draw_forecast(self, a: Analysis) -> None:
        cur, fc = self.currency, a.forecast
        projected = fc["month_end_forecast"] / a.budget if a.budget else math.nan
        color = BAD if projected > 1 else WARN if projected > 0.8 else GOOD
        cards = [kpi("Month to date", money(fc["month_to_date_cost"], cur), f"{fc['days_elapsed']:.1f} days elapsed"),
                 kpi("Month-end forecast", money(fc["month_end_forecast"], cur), f"method: {fc['method']}"),
                 kpi("Forecast band (≈95 %)", f"{money(fc['forecast_low'], cur)} – {money(fc['forecast_high'], cur)}")]
        if a.budget:
            cards.append(kpi("Budget burn", percent(fc["month_to_date_cost"] / a.budget),
                             f"forecast {percent(projected)} of {money(a.budget, cur)}", color))
        self.fc_kpis.object = kpi_row(cards)
        ys = ["actual", "forecast"] + (["budget"] if a.budget else [])
        self.burn.show(lines(a.burn, ys, "This month's cumulative cost (UTC)", cur,
                             colors=["#2563eb", "#2563eb", BAD], band=("low", "high"), dashed=("forecast",)))
        self.burn_text.object = (
            f"Budget {money(a.budget, cur)}: **{'over budget by month end' if projected > 1 else 'within budget'}**"
            f" on the current trend." if a.budget else
            "No monthly cost budget is configured (`program.budgets` or the store's `budget` table): the forecast "
            "is shown without a limit.") + " The forecast follows the models, keys and endpoints selected."

    def _drill(self, model: str | None, key: str | None) -> None:
        if self.result is None or (model is None and key is None):
            self.drill_title.object = "<i>Select a row of the model or key table to see its breakdown.</i>"
            self.drill.update(pd.DataFrame(columns=["key", "requests", "total_tokens", "cost", "errors"]))
            return
        pair = self.result.by_pair
        if model is not None:
            sub = pair[pair["model"] == model].drop(columns="model").rename(columns={"key_id": "key"})
            self.drill_title.object = f"<b>{model}</b> by API key"
        else:
            sub = pair[pair["key_id"] == key].drop(columns="key_id")
            self.drill_title.object = f"<b>{key}</b> by model"
        self.drill.update(sub)

    def _drill_model(self, event: Any) -> None:
        rows = event.new
        if rows and len(self.by_model.frame) > rows[0]:
            self._drill(str(self.by_model.frame["model"].iloc[rows[0]]), None)

    def _drill_key(self, event: Any) -> None:
        rows = event.new
        if rows and len(self.by_key.frame) > rows[0]:
            self._drill(None, str(self.by_key.frame["key"].iloc[rows[0]]))

    async def reprice(self) -> None:
        """The selected rows under the edited prices, beside what they were billed."""
        rows = self.prices.value.to_dict("records")
        prices, problems = parse_price_table(rows)
        f = self.bar.filters()
        sel = select(self.raw, f)
        out = await asyncio.to_thread(whatif, sel, prices, f.freq)
        cur = self.currency
        billed, new = float(out["totals"]["billed"].iloc[0]), float(out["totals"]["repriced"].iloc[0])
        diff = new - billed
        self.whatif_kpis.object = kpi_row([
            kpi("Billed", money(billed, cur), "as recorded at the time"),
            kpi("Repriced", money(new, cur), "under the table above"),
            kpi("Difference", ("+" if diff > 0 else "") + money(diff, cur),
                percent(diff / billed) if billed else "", BAD if diff > 0 else GOOD)])
        self.whatif.update(out["by_model"])
        self.whatif_chart.show(lines(out["over_time"], ["billed", "repriced"], "Billed vs repriced over time",
                                     cur, colors=["#64748b", "#2563eb"], dashed=("repriced",)))
        self.whatif_note.object = ("**Not repriced:** " + "; ".join(problems)) if problems else (
            f"{count(len(sel))} requests repriced; nothing is changed (prices are per `per` tokens; "
            "an empty row means free).")

    # ------------------------------------------------------------ layout

    def tabs(self) -> list[tuple[str, pn.viewable.Viewable]]:
        drill = _stretch(self.drill_title, self.drill.panel)
        return [
            (TABS[0], _stretch(self.error, self.kpis, self.scope,
                               pn.Row(self.cost_time.pane, self.tokens_time.pane, sizing_mode="stretch_width"),
                               pn.Row(self.model_bars.pane, self.key_bars.pane, sizing_mode="stretch_width"),
                               pn.pane.HTML("<b>By model</b> (select a row to drill down into its keys)"),
                               self.by_model.panel,
                               pn.pane.HTML("<b>By API key</b> (select a row to drill down into its models)"),
                               self.by_key.panel,
                               drill, pn.pane.HTML("<b>Over time</b>"), self.over_time.panel)),
            (TABS[1], _stretch(pn.pane.HTML("<b>Latency per model</b>: successful requests; TTFT where "
                                            "streamed"), self.latency.panel, self.latency_bars.pane)),
            (TABS[2], _stretch(self.cold_kpis, pn.pane.HTML("<b>Per model</b>: load time from the start/ready "
                                                            "events; waits from the requests' start_ms"),
                               self.cold.panel, pn.pane.HTML("<b>Each start</b>"), self.starts.panel)),
            (TABS[3], _stretch(self.err_kpis, pn.pane.HTML("<b>Errors by status</b> (0: no answer)"),
                               self.errors.panel, self.errors_time.pane)),
            (TABS[4], _stretch(self.fc_kpis, self.burn.pane, self.burn_text)),
            (TABS[5], _stretch(pn.pane.Markdown(
                "Click a price to edit it (per `per` tokens; the current prices to start with, empty: free), then "
                "reprice the requests the filters select. Nothing is changed on the server."),
                self.prices, pn.Row(self.reprice_button), self.whatif_note, self.whatif_kpis, self.whatif.panel,
                self.whatif_chart.pane)),
            (TABS[6], _stretch(pn.pane.HTML("<b>Alert history</b> (budget thresholds, crash loops, devices, "
                                            "store failures) in the date range, newest first"),
                               self.alert_table.panel)),
        ]
