"""Building blocks of the analytics views: exportable tables and KPI cards (the charts are in ``charts.py``).

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

from .format import (
    INT_COLUMN,
    MS_COLUMN,
    PCT_COLUMN,
    money_column,
    money_digits,
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
