"""Aggregates over a requests frame (as from ``UsageStore.requests_frame``), shared by the HTTP API, the dashboard and
notebooks. Pure functions: no I/O, every one accepts an empty frame.

They group with integer codes and ``np.bincount`` instead of ``DataFrame.groupby``: on a million rows that is several
times faster, and categorical columns (what the store returns) give the codes for free.
Errors are rows with ``status >= 400`` or a non-null ``error``. Latency percentiles count successful rows only.
Time buckets are aligned to the UTC epoch (days start at 00:00 UTC).
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from llm_manager.accounting.pricing import period_start

__all__ = ["by_key", "by_model", "by_period", "latency_percentiles", "month_forecast", "records", "summary",
           "throughput"]

_TOTALS = ["requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "errors"]
_INT_TOTALS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors")
_PCTS = (50.0, 95.0, 99.0)


# ---------------------------------------------------------------- helpers


def _codes(col: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Integer group codes (small dtype, so a stable argsort is a radix sort) and labels; null is its own group."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        labels: list[Any] = list(col.cat.categories)
        if (codes < 0).any():
            codes = np.where(codes < 0, len(labels), codes)
            labels.append(None)
    else:
        codes, uniques = pd.factorize(col, use_na_sentinel=False)
        labels = [None if (isinstance(u, float) and math.isnan(u)) or u is pd.NA else u for u in uniques]
    return codes.astype(_small_int(len(labels) + 1), copy=False), labels


def _small_int(n: int) -> type[np.signedinteger]:
    """Smallest code dtype for n groups: bincount reads fewer bytes and a stable argsort becomes a radix sort."""
    return np.int8 if n < 127 else np.int16 if n < 32_767 else np.int32 if n < 2**31 - 1 else np.int64


def _arr(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(dtype=np.float64)


def _tokens(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, c = _arr(df, "prompt_tokens"), _arr(df, "completion_tokens")
    t = _arr(df, "total_tokens") if "total_tokens" in df.columns else p + c
    return p, c, t


def _errors(df: pd.DataFrame) -> np.ndarray:
    err = df["status"].to_numpy() >= 400
    if "error" in df.columns:
        err |= df["error"].notna().to_numpy()
    return err


def _group_sums(codes: np.ndarray, n: int, weights: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Row count and float sums of each weight per code in ``range(n)``."""
    if np.all(codes[1:] >= codes[:-1]):
        # sorted codes (time buckets of a ts-sorted frame): segment sums. bincount would add into one bin over and
        # over, a dependency chain that makes it ~2.5x slower than on shuffled codes.
        starts = np.searchsorted(codes, np.arange(n, dtype=codes.dtype))
        counts = np.diff(starts, append=len(codes))
        idx = np.minimum(starts, len(codes) - 1)
        return counts, [np.where(counts > 0, np.add.reduceat(w, idx, dtype=np.float64), 0.0) for w in weights]
    return np.bincount(codes, minlength=n), [np.bincount(codes, weights=w, minlength=n) for w in weights]


def _totals(df: pd.DataFrame, codes: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per-code sums of the standard totals."""
    p, c, t = _tokens(df)
    counts, sums = _group_sums(codes, n, [p, c, t, _arr(df, "cost"), _errors(df)])
    out = {"requests": counts, **dict(zip(_TOTALS[1:], sums, strict=True))}
    for name in _INT_TOTALS:
        out[name] = np.rint(out[name]).astype(np.int64)
    return out


def _empty(first: Sequence[str], rest: Sequence[str] = _TOTALS) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "cost" else "int64") for c in rest}
                        ).reindex(columns=[*first, *rest])


def _by(df: pd.DataFrame, col: str) -> pd.DataFrame:
    if len(df) == 0:
        return _empty([col])
    codes, labels = _codes(df[col])
    sums = _totals(df, codes, len(labels))
    out = pd.DataFrame({col: pd.Series(labels, dtype=object), **sums})
    out = out[out["requests"] > 0]
    return out.sort_values(["cost", "requests"], ascending=False, kind="stable").reset_index(drop=True)


def _step_seconds(freq: str) -> int:
    offset = to_offset(freq.replace("H", "h") if freq.endswith("H") else freq)
    try:
        nanos = offset.nanos
    except ValueError:
        raise ValueError(f"freq {freq!r} is not a fixed duration (use e.g. 'D', 'h', '15min')") from None
    if nanos % 1_000_000_000 or nanos <= 0:
        raise ValueError(f"freq {freq!r} must be a whole number of seconds")
    return nanos // 1_000_000_000


def _buckets(ts: np.ndarray, step: int) -> tuple[np.ndarray, int, pd.DatetimeIndex]:
    """Epoch-aligned bucket codes, count, and each bucket's start time (UTC), gaps included."""
    b = ts.astype(np.int64) // step  # truncation == floor for epoch times (> 0), and 10x faster on floats
    lo, hi = int(b.min()), int(b.max())
    n = hi - lo + 1
    times = pd.to_datetime((np.arange(lo, hi + 1, dtype=np.int64) * step), unit="s", utc=True)
    return (b - lo).astype(_small_int(n), copy=False), n, times


# ---------------------------------------------------------------- aggregates


def by_model(df: pd.DataFrame) -> pd.DataFrame:
    """Totals per model: requests, prompt/completion/total tokens, cost, errors; dearest first."""
    return _by(df, "model")


def by_key(df: pd.DataFrame) -> pd.DataFrame:
    """Totals per API key (``key_id`` None: requests without a key); dearest first."""
    return _by(df, "key_id")


def by_period(df: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Totals per time bucket (``freq`` any fixed pandas frequency: "D", "h", "15min"), empty buckets as zeros."""
    step = _step_seconds(freq)
    if len(df) == 0:
        return _empty(["time"]).astype({"time": "datetime64[ns, UTC]"})
    codes, n, times = _buckets(_arr(df, "ts"), step)
    return pd.DataFrame({"time": times, **_totals(df, codes, n)})


def _percentiles(x: np.ndarray) -> np.ndarray:
    """p50/p95/p99 with numpy's default linear interpolation. Sorts ``x`` in place: a SIMD sort beats
    ``np.percentile``, whose multi-kth partition is several times slower than sorting the whole group."""
    if x.size == 0:
        return np.full(len(_PCTS), np.nan)
    x.sort()
    pos = (x.size - 1) * np.asarray(_PCTS) / 100.0
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.size - 1)
    t = pos - lo
    a, b = x[lo], x[hi]
    return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)  # numpy's lerp formula


def latency_percentiles(df: pd.DataFrame, by: str | None = "model") -> pd.DataFrame:
    """p50/p95/p99 of total_ms and ttft_ms (ms) per ``by`` group (None: one overall row), successful rows only.

    Linear interpolation (numpy's and pandas' default). ttft percentiles ignore rows without a TTFT."""
    cols = ["requests"] + [f"{m}_p{int(q)}" for m in ("total_ms", "ttft_ms") for q in _PCTS]
    first = [by] if by else []
    ok = df["status"].to_numpy() < 400 if len(df) else np.zeros(0, dtype=bool)
    if not ok.any():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "requests" else "float64") for c in cols}
                            ).reindex(columns=[*first, *cols])
    if by:
        codes, labels = _codes(df[by])
    else:
        codes, labels = np.zeros(len(df), dtype=np.int8), ["all"]
    codes = codes[ok]  # index arrays, not the frame: copying every column costs more than the percentiles
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(labels))
    ends = np.cumsum(counts)
    total, ttft = _arr(df, "total_ms")[ok][order], _arr(df, "ttft_ms")[ok][order]
    rows = []
    for g, label in enumerate(labels):
        if counts[g] == 0:
            continue
        lo, hi = ends[g] - counts[g], ends[g]
        t = ttft[lo:hi]
        pt = _percentiles(total[lo:hi])
        pf = _percentiles(t[~np.isnan(t)])
        rows.append([label, int(counts[g]), *pt, *pf])
    out = pd.DataFrame(rows, columns=["_label", *cols])
    out = out.sort_values("requests", ascending=False, kind="stable").reset_index(drop=True)
    return out.rename(columns={"_label": by}) if by else out.drop(columns="_label")


def throughput(df: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """Requests/s and tokens/s (all, and completion only) per bucket of finished requests, gaps as zeros."""
    step = _step_seconds(freq)
    cols = ["time", "requests", "requests_per_s", "tokens_per_s", "completion_tokens_per_s"]
    if len(df) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "requests" else "float64") for c in cols[1:]}
                            ).reindex(columns=cols).astype({"time": "datetime64[ns, UTC]"})
    codes, n, times = _buckets(_arr(df, "ts"), step)
    _, c, t = _tokens(df)
    count, (tokens, completion) = _group_sums(codes, n, [t, c])
    return pd.DataFrame({
        "time": times, "requests": count, "requests_per_s": count / step, "tokens_per_s": tokens / step,
        "completion_tokens_per_s": completion / step,
    })


def month_forecast(df: pd.DataFrame, now: float) -> dict[str, Any]:
    """Month-to-date cost (UTC calendar month of ``now``) and a month-end forecast.

    With >= 3 complete days so far, a straight line fitted (``numpy.polyfit``) to the complete days' costs predicts the
    rest of the month (today's remaining fraction and each later day, never below 0); with fewer, the forecast is
    ``daily_average * days_in_month``. ``days_elapsed`` is fractional: ``daily_average = month_to_date / days_elapsed``.
    """
    start = period_start(now)
    day = datetime.fromtimestamp(now, tz=timezone.utc)
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    days_elapsed = max(0.0, (now - start) / 86400.0)
    mtd = 0.0
    daily = np.zeros(0)
    n_full = int(days_elapsed)
    if len(df):
        ts = _arr(df, "ts")
        mask = (ts >= start) & (ts <= now)
        cost = _arr(df, "cost")[mask]
        mtd = float(cost.sum())
        if n_full >= 3:
            d = (ts[mask] - start).astype(np.int64) // 86400
            daily = np.bincount(d, weights=cost, minlength=n_full + 1)[:n_full]
    average = mtd / days_elapsed if days_elapsed > 0 else 0.0
    if n_full >= 3 and len(daily) == n_full:
        slope, intercept = np.polyfit(np.arange(n_full, dtype=np.float64), daily, 1)
        future = np.maximum(0.0, slope * np.arange(n_full, days_in_month) + intercept)
        rest = (1.0 - (days_elapsed - n_full)) * future[0] + future[1:].sum() if future.size else 0.0
        forecast, method = mtd + float(rest), "trend"
    else:
        forecast, method = average * days_in_month, "average"
    return {"month_to_date_cost": mtd, "month_end_forecast": float(forecast), "daily_average": float(average),
            "days_elapsed": days_elapsed, "days_in_month": days_in_month, "method": method}


# ---------------------------------------------------------------- JSON


def _jsonable(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A (small) frame as JSON-ready records: Python scalars, ISO times, NaN as None."""
    return [{k: _jsonable(v) for k, v in row.items()} for row in frame.to_dict("records")]


def summary(df: pd.DataFrame, now: float) -> dict[str, Any]:
    """Everything ``/api/usage/summary`` returns, JSON-ready."""
    _, _, t = _tokens(df) if len(df) else (None, None, np.zeros(0))
    return {
        "total_requests": len(df),
        "total_tokens": int(np.rint(t.sum())),
        "total_cost": float(_arr(df, "cost").sum()) if len(df) else 0.0,
        "total_errors": int(_errors(df).sum()) if len(df) else 0,
        "by_model": records(by_model(df)),
        "by_key": records(by_key(df)),
        "by_day": records(by_period(df, "D")),
        "forecast": month_forecast(df, now),
    }
