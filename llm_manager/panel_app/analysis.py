"""The analytics app's data layer: one set of filters, every view's frames computed from it (no Panel here).

The controller loads the request rows of the selected date range (and the current month, for the forecast) once,
``prepare``s them, and on every filter change calls :func:`analyse` in a worker thread; each view then only draws.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..accounting import analytics
from ..accounting.pricing import parse_pricing, period_start
from .whatif import billed_vs_repriced

NO_KEY = "(no key)"  # how requests without an API key are listed and picked
FREQS = {"Hour": "h", "Day": "D", "Week": "W"}
START_OUTCOMES = ("ready", "fail", "crash", "stop", "evict")


@dataclass(frozen=True)
class Filters:
    """What every view shows: a time range [since, until) and, when non-empty, only these models/keys/endpoints."""

    since: float | None = None
    until: float | None = None
    models: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # NO_KEY stands for requests without a key
    endpoints: tuple[str, ...] = ()
    freq: str = "D"

    def describe(self) -> str:
        def day(ts: float | None, default: str) -> str:
            return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts else default
        parts = [f"{day(self.since, 'the beginning')} to {day((self.until or 0) - 1 if self.until else None, 'now')}"]
        for name, values in (("models", self.models), ("keys", self.keys), ("endpoints", self.endpoints)):
            if values:
                parts.append(f"{name}: {', '.join(values)}")
        return "; ".join(parts)


def in_range(df: pd.DataFrame, since: float | None, until: float | None) -> pd.DataFrame:
    """Rows of a ts-sorted frame in [since, until): a slice found by binary search, not a mask."""
    if len(df) == 0 or (since is None and until is None):
        return df
    ts = df["ts"].to_numpy(dtype=np.float64)
    lo = 0 if since is None else int(np.searchsorted(ts, since, side="left"))
    hi = len(ts) if until is None else int(np.searchsorted(ts, until, side="left"))
    return df.iloc[lo:hi]


def select(df: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """The rows the filters keep (date range, then models, keys and endpoints)."""
    df = in_range(df, f.since, f.until)
    keys = tuple(None if k == NO_KEY else k for k in f.keys)
    mask = analytics.filter_mask(df, model=f.models, key_id=keys, endpoint=f.endpoints)
    return df if mask is None else df[mask]


def options(df: pd.DataFrame) -> dict[str, list[str]]:
    """The values each filter offers: those present in the loaded rows."""
    def present(col: str) -> list[Any]:
        if col not in df.columns or len(df) == 0:
            return []
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            used = np.unique(s.cat.codes.to_numpy())
            values = [s.cat.categories[i] if i >= 0 else None for i in used]
        else:
            values = list(pd.unique(s))
        return values

    keys = present("key_id")
    return {"models": sorted(str(v) for v in present("model") if v is not None),
            "keys": sorted(str(k) for k in keys if isinstance(k, str) and k) + (
                [NO_KEY] if any(not (isinstance(k, str) and k) for k in keys) else []),
            "endpoints": sorted(str(v) for v in present("endpoint") if v)}


def key_labels(frame: pd.DataFrame, col: str = "key_id") -> pd.DataFrame:
    """``key_id`` None shown as "(no key)"."""
    if col in frame.columns:
        frame[col] = pd.Series([k if isinstance(k, str) and k else NO_KEY for k in frame[col]], index=frame.index,
                               dtype=object)
    return frame


def cold_starts(events: pd.DataFrame, models: tuple[str, ...] = ()) -> pd.DataFrame:
    """Each model start (a ``start`` event) with how it ended (the next ready/fail/crash/stop of that model) and how
    long that took: ts, model, outcome, seconds (NaN while still starting)."""
    cols = ["ts", "model", "outcome", "seconds", "detail"]
    if events is None or len(events) == 0 or "kind" not in events.columns:
        return pd.DataFrame(columns=cols).astype({"ts": "float64", "seconds": "float64"})
    ev = events[events["kind"].isin(("start", *START_OUTCOMES))]
    if models:
        ev = ev[ev["model"].isin(models)]
    rows = []
    for model, group in ev.sort_values("ts", kind="stable").groupby("model", sort=True, observed=True):
        pending: dict[str, Any] | None = None
        for ts, kind, detail in zip(group["ts"], group["kind"], group.get("detail", [""] * len(group)), strict=False):
            if kind == "start":
                if pending is not None:
                    rows.append(pending)
                pending = {"ts": float(ts), "model": str(model), "outcome": "starting", "seconds": math.nan,
                           "detail": ""}
            elif pending is not None:
                pending.update(outcome=str(kind), seconds=float(ts) - pending["ts"], detail=str(detail or ""))
                rows.append(pending)
                pending = None
        if pending is not None:
            rows.append(pending)
    return pd.DataFrame(rows, columns=cols).sort_values("ts", ascending=False, kind="stable").reset_index(drop=True)


def cold_start_summary(starts: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """Per model: starts, how many became ready, median and longest load time (events), and the requests that
    waited for a cold start with their p50/p95 wait (rows' ``start_ms``)."""
    cols = ["model", "starts", "ready", "failed", "load_p50_s", "load_max_s", "waited_requests", "wait_p50_ms",
            "wait_p95_ms"]
    out: dict[str, dict[str, Any]] = {}
    for model, g in starts.groupby("model", sort=True):
        ok = g[g["outcome"] == "ready"]["seconds"]
        out[str(model)] = {"model": model, "starts": len(g), "ready": len(ok),
                           "failed": int(g["outcome"].isin(("fail", "crash")).sum()),
                           "load_p50_s": float(ok.median()) if len(ok) else math.nan,
                           "load_max_s": float(ok.max()) if len(ok) else math.nan}
    if len(latency) and "start_ms_p50" in latency.columns:
        for row in latency.itertuples(index=False):
            if math.isnan(row.start_ms_p50):
                continue
            entry = out.setdefault(str(row.model), {"model": row.model, "starts": 0, "ready": 0, "failed": 0,
                                                    "load_p50_s": math.nan, "load_max_s": math.nan})
            entry.update(wait_p50_ms=row.start_ms_p50, wait_p95_ms=row.start_ms_p95)
    frame = pd.DataFrame(list(out.values()), columns=cols)
    return frame.astype({"model": object, "starts": "int64", "ready": "int64", "failed": "int64",
                         **{c: "float64" for c in cols[4:] if c != "waited_requests"}})


def waited_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per model, the requests whose answer waited for a model start (``start_ms > 0``)."""
    if len(df) == 0 or "start_ms" not in df.columns:
        return pd.DataFrame({"model": [], "waited_requests": []})
    waited = df[df["start_ms"].to_numpy(dtype=np.float64) > 0]
    counts = analytics.by_model(waited)[["model", "requests"]] if len(waited) else pd.DataFrame(
        {"model": [], "requests": []})
    return counts.rename(columns={"requests": "waited_requests"})


def budget_burn(month: pd.DataFrame, now: float, budget: float | None, forecast: dict[str, Any]) -> pd.DataFrame:
    """This month's cumulative cost per day, then the forecast's path (and band) to month end, and the budget."""
    start = period_start(now)
    days = int(forecast["days_in_month"])
    daily = np.zeros(days)
    if len(month):
        d = analytics.by_period(in_range(month, start, now + 1), "D")
        if len(d):
            epoch_days = (d["time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)
            idx = epoch_days.to_numpy(dtype=np.int64) - int(start) // 86400
            ok = (idx >= 0) & (idx < days)
            daily[idx[ok]] = d["cost"].to_numpy()[ok]
    elapsed = forecast["days_elapsed"]
    day = np.arange(1, days + 1, dtype=np.float64)
    actual = np.where(day <= math.ceil(elapsed), np.cumsum(daily), np.nan)
    mtd = forecast["month_to_date_cost"]

    def path(end: float) -> np.ndarray:
        frac = np.clip((day - elapsed) / max(days - elapsed, 1e-9), 0, 1)
        return np.where(day >= elapsed, mtd + (end - mtd) * frac, np.nan)

    return pd.DataFrame({"time": pd.to_datetime(start + (day - 1) * 86400, unit="s", utc=True), "day": day,
                         "actual": actual, "forecast": path(forecast["month_end_forecast"]),
                         "low": path(forecast["forecast_low"]), "high": path(forecast["forecast_high"]),
                         "budget": np.full(days, budget if budget else np.nan)})


def parse_price_table(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The what-if editor's rows (model, input, output, per) as pricing; a message per row that does not parse."""
    prices: dict[str, Any] = {}  # model -> what parse_pricing returns (None: free)
    problems = []
    for row in rows:
        model = str(row.get("model") or "").strip()
        if not model:
            continue
        inp, out = row.get("input"), row.get("output")
        if _blank(inp) and _blank(out):
            prices[model] = None
            continue
        block = {"input": _num(inp), "output": _num(out), "per": _num(row.get("per")) or 1_000_000}
        try:
            prices[model] = parse_pricing(block, f"pricing.{model}")
        except Exception as exc:  # ConfigError names the field; shown beside the table
            problems.append(f"{model}: {exc}")
    return prices, problems


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _num(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v.replace(",", ""))
        except ValueError:
            return v
    return 0.0 if _blank(v) else v


def price_rows(prices: dict[str, Any], models: list[str]) -> pd.DataFrame:
    """The editor's starting table: every model seen or configured, with its current input/output price."""
    rows = []
    for model in sorted(set(models) | set(prices)):
        block = prices.get(model) or {}
        rows.append({"model": model, "input": block.get("input"), "output": block.get("output"),
                     "per": block.get("per", 1_000_000)})
    return pd.DataFrame(rows, columns=["model", "input", "output", "per"])


def whatif(df: pd.DataFrame, prices: dict[str, Any], freq: str = "D") -> dict[str, pd.DataFrame]:
    """The selected rows' billed cost beside their cost under ``prices``, by model and over time."""
    return billed_vs_repriced(df, prices, freq)


@dataclass
class Analysis:
    """Every frame and number the analytics views draw, for one set of filters."""

    filters: Filters
    totals: dict[str, Any]
    over_time: pd.DataFrame
    over_time_by_model: pd.DataFrame
    by_model: pd.DataFrame
    by_key: pd.DataFrame
    by_pair: pd.DataFrame
    latency: pd.DataFrame
    errors: pd.DataFrame
    errors_over_time: pd.DataFrame
    starts: pd.DataFrame
    cold: pd.DataFrame
    forecast: dict[str, Any]
    burn: pd.DataFrame
    alerts: pd.DataFrame
    budget: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def analyse(df: pd.DataFrame, f: Filters, now: float, events: pd.DataFrame | None = None,
            alerts: pd.DataFrame | None = None, budget: float | None = None) -> Analysis:
    """All views' data for filters ``f`` over the loaded (prepared) rows ``df``; run it in a worker thread."""
    sel = select(df, f)
    month = select(df, Filters(period_start(now), None, f.models, f.keys, f.endpoints))
    over = analytics.by_period(sel, f.freq)
    lat = analytics.latency_percentiles(sel, "model", column="start_ms")
    starts = cold_starts(in_range_events(events, f.since, f.until), f.models)
    cold = cold_start_summary(starts, lat)
    waited = waited_counts(sel)
    if len(cold):
        cold = cold.drop(columns="waited_requests").merge(waited, on="model", how="left")
        cold["waited_requests"] = cold["waited_requests"].fillna(0).astype("int64")
    forecast = analytics.month_forecast(month, now)
    errors = int(analytics._errors(sel).sum()) if len(sel) else 0
    overall = analytics.latency_percentiles(sel, None)
    totals = {"requests": len(sel), "cost": float(sel["cost"].sum()) if len(sel) else 0.0,
              "tokens": int(over["total_tokens"].sum()) if len(over) else 0, "errors": errors,
              "error_rate": errors / len(sel) if len(sel) else 0.0,
              "p50_ms": float(overall["total_ms_p50"].iloc[0]) if len(overall) else math.nan,
              "p95_ms": float(overall["total_ms_p95"].iloc[0]) if len(overall) else math.nan,
              "ttft_p50_ms": float(overall["ttft_ms_p50"].iloc[0]) if len(overall) else math.nan,
              "cold_starts": int(len(starts))}
    al = alerts if alerts is not None else pd.DataFrame(columns=["ts", "kind", "subject", "message", "delivery"])
    if len(al):
        keep = np.ones(len(al), dtype=bool)
        if f.since is not None:
            keep &= al["ts"].to_numpy() >= f.since
        if f.until is not None:
            keep &= al["ts"].to_numpy() < f.until
        if f.models:  # an alert about another model goes; those about keys, budgets, devices, the store stay
            known = set(options(df)["models"])
            subject = al["subject"].astype(str)
            keep &= (~subject.isin(known) | subject.isin(f.models)).to_numpy()
        al = al[keep]
    return Analysis(
        filters=f, totals=totals, over_time=over, over_time_by_model=analytics.by_period(sel, f.freq, by="model"),
        by_model=analytics.by_model(sel), by_key=key_labels(analytics.by_key(sel)),
        by_pair=key_labels(analytics.by_pair(sel, "model", "key_id")), latency=lat,
        errors=analytics.errors_by_status(sel), errors_over_time=over[["time", "requests", "errors"]],
        starts=starts, cold=cold, forecast=forecast, burn=budget_burn(month, now, budget, forecast),
        alerts=al.reset_index(drop=True), budget=budget)


def in_range_events(events: pd.DataFrame | None, since: float | None, until: float | None) -> pd.DataFrame | None:
    if events is None or len(events) == 0:
        return events
    ts = events["ts"].to_numpy(dtype=np.float64)
    keep = np.ones(len(ts), dtype=bool)
    if since is not None:
        keep &= ts >= since
    if until is not None:
        keep &= ts < until
    return events[keep]
