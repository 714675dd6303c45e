"""GET /api/report: the usage report over HTTP (admin scope), and the renderers ``llm-manager report`` shares.

The computation is ``accounting.report``'s; this module renders it: CSV, Parquet, JSON, and a self-contained
HTML page (static Bokeh plots with BokehJS inlined, plain HTML tables that read without JavaScript) for a month-end
mail. ``?from=YYYY-MM-DD&to=YYYY-MM-DD&by=model,key,day&format=csv|parquet|html|json``.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from bokeh.embed import file_html
from bokeh.layouts import gridplot
from bokeh.models import HoverTool, NumeralTickFormatter
from bokeh.plotting import figure
from bokeh.resources import Resources
from jinja2 import Template

from ..accounting import analytics, report
from ..accounting.report import Period, Report
from ..service import Service
from .management import ManagementHandler

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet",
                 "html": "text/html; charset=utf-8", "json": "application/json"}
HEADINGS = {"model": "Model", "key": "API key", "key_name": "Key name", "endpoint": "Endpoint", "day": "Day",
            "week": "Week of", "month": "Month", "requests": "Requests", "errors": "Errors",
            "cached_requests": "Cached", "prompt_tokens": "Prompt tokens", "completion_tokens": "Completion tokens",
            "total_tokens": "Total tokens", "token_cost": "Token cost", "runtime_cost": "Runtime cost",
            "gpu_seconds": "GPU-seconds", "energy_wh": "Energy (Wh)"}
BLUE, ORANGE = "#3b6fb6", "#e08a2c"


def service_report(service: Service, period: Period, by: Sequence[str]) -> Report:
    """The report of a running service's usage, runtime cost and energy included (blocking: off the IOLoop)."""
    accounting = service.accounting
    df = accounting.usage_frame(since=period.since, until=period.until)
    names = {k["id"]: k["name"] for k in accounting.keys()}
    store = accounting.store
    extras = [] if store is None else [report.RuntimeColumns(store, df, period, time.time(), accounting.start_terms)]
    return report.build_report(df, period, by, names, accounting.pricer.currency(), extras)


def render(rep: Report, fmt: str) -> bytes:
    """The report as ``fmt`` (csv, parquet, html or json)."""
    if fmt == "csv":
        return report.to_csv(rep)
    if fmt == "parquet":
        return report.to_parquet(rep)
    if fmt == "html":
        return to_html(rep).encode()
    doc = {"from": rep.period.first.isoformat(), "to": rep.period.last.isoformat(), "by": list(rep.by),
           "currency": rep.currency, "totals": rep.totals(), "rows": analytics.records(rep.table), "notes": rep.notes}
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- HTML


def _number(value: Any, column: str, currency: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if column.endswith("cost"):
        v = float(value)
        return f"{v:,.2f} {currency}" if abs(v) >= 1 or v == 0 else f"{v:,.4f} {currency}"
    if isinstance(value, float) and not float(value).is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}" if isinstance(value, (int, float)) else html.escape(str(value))


def _table(frame: pd.DataFrame, currency: str, totals: dict[str, Any] | None = None) -> str:
    """A plain HTML table: text left, numbers right with thousands separators, an optional totals row."""
    numeric = set(frame.select_dtypes("number").columns)
    head = "".join(f'<th class="{"num" if c in numeric else ""}">{html.escape(HEADINGS.get(c, c))}</th>'
                   for c in frame.columns)
    rows = []
    for rec in frame.to_dict("records"):
        cells = [f'<td class="num">{_number(v, c, currency)}</td>' if c in numeric else
                 f"<td>{html.escape(str(v)) if v is not None else '<i>(no key)</i>' if c == 'key' else ''}</td>"
                 for c, v in rec.items()]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if totals is not None:
        cells = [f'<td class="num">{_number(totals.get(c), c, currency)}</td>' if c in numeric else
                 f"<td>{'Total' if i == 0 else ''}</td>" for i, c in enumerate(frame.columns)]
        rows.append('<tr class="total">' + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _bars(labels: list[str], values: list[float], title: str, unit: str, horizontal: bool, color: str) -> Any:
    labels = labels or ["(none)"]
    values = values or [0.0]
    tip = HoverTool(tooltips=[("", "@x" if not horizontal else "@y"), (unit, "@top{0,0.[0000]}" if not horizontal
                                                                       else "@right{0,0.[0000]}")])
    if horizontal:
        p = figure(y_range=list(reversed(labels)), height=max(180, 40 + 28 * len(labels)), width=460, title=title,
                   toolbar_location=None, tools=[tip])
        p.hbar(y=labels, right=values, height=0.7, color=color)
        p.xaxis.axis_label = unit
        p.x_range.start = 0
    else:
        p = figure(x_range=labels, height=280, width=460, title=title, toolbar_location=None, tools=[tip])
        p.vbar(x=labels, top=values, width=0.8, color=color)
        p.yaxis.axis_label = unit
        p.y_range.start = 0
        p.xaxis.major_label_orientation = 0.9 if len(labels) > 7 else 0
    (p.ygrid if horizontal else p.xgrid).grid_line_color = None
    axis = p.xaxis if horizontal else p.yaxis
    axis.formatter = NumeralTickFormatter(format="0,0.[0000]")  # never 2.5e-3
    if unit == "requests":
        axis.ticker.min_interval = 1  # whole requests only
    return p


def plots(rep: Report) -> Any:
    """Token cost and requests per day, token cost by model and by key."""
    day, model, key = rep.views["day"], rep.views["model"], rep.views["key"]
    key_labels = [(n or k or "(no key)") for k, n in zip(key["key"], key.get("key_name", key["key"]), strict=True)]
    return gridplot([
        [_bars(list(day["day"]), list(day["token_cost"]), "Token cost per day", rep.currency, False, BLUE),
         _bars(list(day["day"]), list(day["requests"].astype(float)), "Requests per day", "requests", False, ORANGE)],
        [_bars([str(m) for m in model["model"]], list(model["token_cost"]), "Token cost by model", rep.currency,
               True, BLUE),
         _bars(key_labels, list(key["token_cost"]), "Token cost by API key", rep.currency, True, BLUE)],
    ], toolbar_location=None)


class _Inline(Resources):
    """BokehJS inlined and no file fetched: extensions loaded in the same process (Panel's module shim) add
    relative URLs the report neither needs nor could load from a mail attachment."""

    def __init__(self, components: list[Any] | None = None) -> None:
        super().__init__(mode="inline", components=components)

    def clone(self, *, components: list[Any] | None = None) -> Resources:
        return _Inline(components if components is not None else list(self.components))

    @property
    def js_files(self) -> list[str]:
        return []

    @property
    def css_files(self) -> list[str]:
        return []


_PAGE = Template("""{% extends base %}
{% block postamble %}<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; margin: 24px !important;
       height: auto !important; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #52606d; margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
.card { border: 1px solid #d9e2ec; border-radius: 8px; padding: 10px 14px; min-width: 130px; }
.card b { display: block; font-size: 18px; } .card span { color: #52606d; font-size: 12px; }
table { border-collapse: collapse; font-size: 13px; } th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; }
th { text-align: left; background: #f5f7fa; } .num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #9aa5b1; } .notes { color: #8a6d3b; }
</style>{% endblock %}
{% block contents %}{{ header }}<h2>Charts</h2>{{ super() }}{{ tables }}{% endblock %}
""")


def to_html(rep: Report) -> str:
    """The whole report as one self-contained page (BokehJS inlined: it opens offline, from a mail attachment)."""
    totals = rep.totals()
    cards = [("Requests", f"{totals.get('requests', 0):,}"), ("Errors", f"{totals.get('errors', 0):,}"),
             ("Cached", f"{totals.get('cached_requests', 0):,}"), ("Tokens", f"{totals.get('total_tokens', 0):,}"),
             ("Token cost", _number(totals.get("token_cost", 0.0), "token_cost", rep.currency))]
    cards += [(HEADINGS.get(c, c.replace("_", " ").capitalize()), _number(v, c, rep.currency))
              for c, v in totals.items() if c not in report.COLUMNS]
    made = datetime.fromtimestamp(time.time(), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"<h1>LLM usage report</h1><p class=\"meta\">{html.escape(str(rep.period))} (UTC days), by "
              f"{html.escape(', '.join(rep.by))}; made {made} by llm-manager</p><div class=\"cards\">"
              + "".join(f"<div class=\"card\"><b>{v}</b><span>{html.escape(k)}</span></div>" for k, v in cards)
              + "</div>")
    if rep.notes:
        header += "".join(f"<p class=\"notes\">{html.escape(n)}</p>" for n in rep.notes)
    title = f"By {', '.join(rep.by)}"
    tables = f"<h2>{html.escape(title)}</h2>" + _table(rep.table, rep.currency, totals)
    return file_html(plots(rep), _Inline(), f"LLM usage report, {rep.period}", template=_PAGE,
                     template_variables={"header": header, "tables": tables})


# ---------------------------------------------------------------- HTTP


class ReportHandler(ManagementHandler):
    async def get(self) -> None:
        period = report.parse_period(self.get_argument("from", None), self.get_argument("to", None))
        by = report.parse_by(self.get_argument("by", None))
        fmt = report.parse_format(self.get_argument("format", None), default="json")

        def make() -> bytes:
            return render(service_report(self.service, period, by), fmt)

        body = await asyncio.get_running_loop().run_in_executor(None, make)
        self.set_header("Content-Type", CONTENT_TYPES[fmt])
        if fmt != "json":
            self.set_header("Content-Disposition", f'attachment; filename="{report.filename(period, fmt)}"')
        self.finish(body)


def report_routes(service: Service) -> list[tuple]:
    return [(r"/api/report", ReportHandler, {"service": service})]
