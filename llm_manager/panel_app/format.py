"""Numbers as a person reads them: currency with its symbol, thousands separators, never scientific notation.

Pure functions (tested without Panel) and the matching Tabulator/Bokeh formatters, so a table cell, a KPI card and a
chart axis show the same amount the same way.
"""

from __future__ import annotations

import math
from typing import Any

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹"}
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#64748b"]
ACCENT, GOOD, WARN, BAD, MUTED = "#2563eb", "#15803d", "#b45309", "#b91c1c", "#64748b"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def money_digits(value: float) -> int:
    """Cents for amounts of a unit or more; enough digits that fractions of a cent never read as 0.00."""
    v = abs(value)
    if v == 0 or v >= 1:
        return 2
    if v >= 0.01:
        return 4
    return min(10, max(4, 1 - math.floor(math.log10(v))))  # two significant digits: 0.0025, 0.000012


def money(value: Any, currency: str = "USD") -> str:
    """$1,234.50, $0.0025, €12.00, 3.10 CHF; "—" for a missing value."""
    if not _finite(value):
        return "—"
    text = f"{abs(value):,.{money_digits(value)}f}"
    sign = "-" if value < 0 else ""
    symbol = SYMBOLS.get(currency.upper())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def count(value: Any) -> str:
    """1,234,567; "—" for a missing value."""
    return f"{round(value):,}" if _finite(value) else "—"


def compact(value: Any) -> str:
    """1.2 M, 35.4 k, 950: big counts in a KPI card."""
    if not _finite(value):
        return "—"
    for size, suffix in ((1e9, " B"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= size:
            return f"{value / size:,.1f}{suffix}"
    return f"{value:,.0f}"


def ms(value: Any) -> str:
    """850 ms, 1.25 s, 2.5 min: a latency."""
    if not _finite(value):
        return "—"
    if value < 1000:
        return f"{value:,.0f} ms"
    if value < 60_000:
        return f"{value / 1000:,.2f} s"
    return f"{value / 60_000:,.1f} min"


def percent(value: Any, digits: int = 1) -> str:
    """A share (0..1) as 12.5 %."""
    return f"{100 * value:,.{digits}f} %" if _finite(value) else "—"


def money_column(currency: str) -> dict[str, Any]:
    """A Tabulator money formatter: symbol, thousands separators, up to 6 decimals (never 2.5e-3)."""
    symbol = SYMBOLS.get(currency.upper(), "")
    return {"type": "money", "decimal": ".", "thousand": ",", "symbol": symbol or f" {currency}",
            "symbolAfter": not symbol, "precision": 6}


INT_COLUMN = {"type": "money", "decimal": ".", "thousand": ",", "precision": 0}
MS_COLUMN = {"type": "money", "decimal": ".", "thousand": ",", "precision": 0, "symbol": " ms", "symbolAfter": True}
PCT_COLUMN = {"type": "money", "decimal": ".", "thousand": ",", "precision": 1, "symbol": " %", "symbolAfter": True}

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


def money_ticks(currency: str) -> Any:
    """An axis formatter for amounts in ``currency``: $0.0025, €1,250.00, 0.50 CHF; never scientific notation."""
    from bokeh.models import CustomJSTickFormatter

    symbol = SYMBOLS.get(currency.upper())
    return CustomJSTickFormatter(code=MONEY_TICKS_JS,
                                 args={"prefix": symbol or "", "suffix": "" if symbol else f" {currency}"})


def money_tooltip(currency: str) -> str:
    """The hover format of an amount (Bokeh's default shows 0.0025 as 2.500e-3)."""
    symbol = SYMBOLS.get(currency.upper())
    return ("{" + symbol + "0,0.00[000000]}") if symbol == "$" else "{0,0.00[000000]} " + currency
