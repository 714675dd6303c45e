"""Cost: by model, key and day (hvplot bars), and the month's budget burn against the month-end forecast.

Data comes from the usage store when the manager has one (a query in a worker thread, at most every 10 s),
otherwise from the in-memory recent records, through the same ``llm_manager.accounting.analytics`` functions.
"""

from __future__ import annotations

import time
from typing import Any

import hvplot.pandas  # noqa: F401  (registers DataFrame.hvplot)
import pandas as pd
import panel as pn
from bokeh.models import CustomJSTickFormatter, NumeralTickFormatter

from ...accounting.pricing import period_start
from .base import View

DAYS = 30
TABLE_COLUMNS = ["model", "requests", "prompt_tokens", "completion_tokens", "cost", "errors"]
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥"}
# Bokeh's default axis shows small costs as 2.500e−3: ticks get as many decimals as their spacing needs (cents at
# least once there are any), thousands separators, and the currency, e.g. $0.0025, $1,250
MONEY_TICKS_JS = """
const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(tick);
let digits = 0;
while (digits < 10 && step > 0 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-6) {
  digits++;
}
if (digits === 1) digits = 2;
const text = Math.abs(tick).toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
return (tick < 0 ? "-" : "") + prefix + text + suffix;
"""


def money_format(value: float, currency: str) -> str:
    """Enough digits that small local costs (fractions of a cent) do not read as 0.0000."""
    digits = 2 if value >= 1 or value == 0 else 4 if value >= 0.01 else 8
    return f"{{value:,.{digits}f}} {currency}"


def money_ticks(currency: str) -> CustomJSTickFormatter:
    """An axis formatter for amounts in ``currency``: $0.0025, €1,250.00, 0.50 CHF; never scientific notation."""
    symbol = SYMBOLS.get(currency.upper())
    return CustomJSTickFormatter(code=MONEY_TICKS_JS,
                                 args={"prefix": symbol or "", "suffix": "" if symbol else f" {currency}"})


def money_tooltip(currency: str) -> str:
    """The hover format of an amount (Bokeh's default shows 0.0025 as 2.500e-3)."""
    return "{$0,0.00[000000]}" if currency.upper() == "USD" else "{0,0.00[000000]} " + currency


def _bars(frame: pd.DataFrame, x: str, what: str, currency: str, color: str) -> Any:
    """Cost bars; tokens instead when nothing is priced (no ``pricing`` in the config), so bars are never flat."""
    if frame.empty:
        return pn.pane.Markdown(f"**Cost {what}**: no requests yet", height=40)
    priced = bool(frame["cost"].sum() > 0)
    y, label = ("cost", f"cost ({currency})") if priced else ("total_tokens", "tokens")
    title = f"Cost {what}" if priced else f"Tokens {what} (no prices configured, so no cost)"
    tooltips = [(x, f"@{{{x}}}"), ("cost", "@{cost}" + money_tooltip(currency)), ("requests", "@{requests}{0,0}"),
                ("tokens", "@{total_tokens}{0,0}")]
    return frame.hvplot.bar(x=x, y=y, title=title, ylabel=label, xlabel="", color=color,
                            yformatter=money_ticks(currency) if priced else NumeralTickFormatter(format="0,0"),
                            hover_cols=["requests", "total_tokens", "cost"], hover_tooltips=tooltips, rot=30,
                            height=260, responsive=True)


class CostView(View):
    title = "Cost"
    period_ms = 10_000

    def __init__(self, source: Any):
        super().__init__(source)
        self.summary: dict[str, Any] = {}
        self.budget: float | None = None
        cur = getattr(source, "currency", "USD")
        self.total = pn.indicators.Number(label=f"Cost, last {DAYS} days", value=0.0, format=f"{{value:,.4f}} {cur}",
                                          font_size="22pt", title_size="11pt")
        self.requests = pn.indicators.Number(label="Requests", value=0, format="{value:,.0f}", font_size="22pt",
                                             title_size="11pt")
        self.tokens = pn.indicators.Number(label="Tokens", value=0, format="{value:,.0f}", font_size="22pt",
                                           title_size="11pt")
        self.mtd = pn.indicators.Number(label="Month to date", value=0.0, format=f"{{value:,.4f}} {cur}",
                                        font_size="22pt", title_size="11pt")
        self.forecast = pn.indicators.Number(label="Month-end forecast", value=0.0, format=f"{{value:,.4f}} {cur}",
                                             font_size="22pt", title_size="11pt")
        self.burn = pn.indicators.Progress(label="Budget burn", value=0, max=100, sizing_mode="stretch_width",
                                           bar_color="success", visible=False)
        self.origin = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"color": "#616161"})
        self.burn_text = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.model_bars = pn.Column(sizing_mode="stretch_width")
        self.key_bars = pn.Column(sizing_mode="stretch_width")
        self.day_bars = pn.Column(sizing_mode="stretch_width")
        numeric = {c: "right" for c in TABLE_COLUMNS[1:]}
        self.table = pn.widgets.Tabulator(pd.DataFrame(columns=TABLE_COLUMNS), disabled=True, show_index=False,
                                          sizing_mode="stretch_width", layout="fit_data_fill", sortable=False,
                                          container_popup=False,
                                          titles={c: c.replace("_", " ") for c in TABLE_COLUMNS},
                                          text_align=numeric, header_align=numeric)
        self._last: tuple | None = None

    def _burn(self, mtd: float, forecast: float, currency: str) -> None:
        if not self.budget:
            self.burn.visible = False
            self.burn_text.object = ("No monthly cost budget configured (`program.budgets`, or a global monthly budget "
                                     "in the usage store): the forecast is shown without a limit.")
            return
        used = 100.0 * mtd / self.budget
        projected = 100.0 * forecast / self.budget
        self.burn.visible = True
        self.burn.value = int(min(100.0, used))
        self.burn.bar_color = "danger" if projected > 100 else "warning" if projected > 80 else "success"
        verdict = ("**over budget by month end**" if projected > 100 else "within budget")
        self.burn_text.object = (f"Budget {self.budget:,.2f} {currency}: {used:.1f}% used so far, forecast "
                                 f"{projected:.1f}% at month end: {verdict}.")

    async def _refresh(self) -> None:
        now = time.time()
        since = min(period_start(now), now - DAYS * 86400)
        summary = await self.source.cost_summary(since, now)
        self.budget = await self.source.budget()
        self.summary = summary
        cur = getattr(self.source, "currency", "USD")
        fc = summary["forecast"]
        day = time.strftime("%Y-%m-%d", time.gmtime(since))
        self.total.label = f"Cost since {day}"
        self.origin.object = (f"{summary['requests']:,} requests, {summary['tokens']:,} tokens since {day} (UTC), "
                              f"from {getattr(self.source, 'usage_origin', 'the manager')}; refreshed every "
                              f"{self.period_ms // 1000} s while this tab is shown.")
        self.requests.value, self.tokens.value = summary["requests"], summary["tokens"]
        for number, value in ((self.total, summary["cost"]), (self.mtd, fc["month_to_date_cost"]),
                              (self.forecast, fc["month_end_forecast"])):
            number.format, number.value = money_format(value, cur), value
        self._burn(fc["month_to_date_cost"], fc["month_end_forecast"], cur)
        key = (summary["requests"], round(summary["cost"], 9), summary["tokens"])
        if key == self._last:  # nothing new: keep the plots (re-rendering them resets zoom and hover)
            return
        self._last = key
        self.model_bars.objects = [_bars(summary["by_model"], "model", "by model", cur, "#1f77b4")]
        self.key_bars.objects = [_bars(summary["by_key"], "key", "by API key", cur, "#9467bd")]
        self.day_bars.objects = [_bars(summary["by_day"], "day", "per day (UTC)", cur, "#2ca02c")]
        table = summary["by_model"].reindex(columns=TABLE_COLUMNS)
        table["cost"] = [money_format(v, cur).format(value=v) for v in table["cost"]]
        self.table.value = table

    @property
    def panel(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.error,
            pn.Row(self.total, self.requests, self.tokens, self.mtd, self.forecast), self.origin,
            pn.Column(pn.pane.Markdown("#### Budget burn (this calendar month, UTC)"), self.burn, self.burn_text,
                      sizing_mode="stretch_width"),
            pn.Row(self.model_bars, self.key_bars, sizing_mode="stretch_width"),
            self.day_bars, self.table, sizing_mode="stretch_width")
