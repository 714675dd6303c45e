"""Aggregates over a requests frame (as from ``UsageStore.requests_frame``), shared by the HTTP API, the dashboard and
notebooks. Pure functions: no I/O, every one accepts an empty frame.

Built to stay under a second on 10 million rows (``bench/analytics.py``):

* groups are integer codes (categorical columns, what the store returns, give them for free) summed with
  ``np.bincount``, never ``DataFrame.groupby``; time buckets of a ts-sorted frame are found by ``searchsorted`` on
  the bucket edges and summed with ``np.add.reduceat`` (no per-row bucket code at all);
* percentiles are exact but need no sort of the whole column: a histogram of the values' float bits finds the bin
  holding each wanted rank, and only the few rows in those bins are sorted;
* :func:`prepare` turns what is slow to read per aggregate (the object ``error`` column) into a flag once per load.

Errors are rows with ``status >= 400`` or a non-null ``error``. Latency percentiles count successful rows only.
Time buckets are aligned to the UTC epoch (days start at 00:00 UTC); weeks ("W") start on Monday 00:00 UTC.
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

from llm_manager.accounting.percentiles import PCTS as _PCTS
from llm_manager.accounting.percentiles import group_percentiles
from llm_manager.accounting.pricing import period_start

__all__ = ["ANALYSIS_COLUMNS", "by_key", "by_model", "by_pair", "by_period", "errors_by_status", "filter_mask", "latency_percentiles",
           "month_forecast", "prepare", "records", "summary", "throughput"]

_TOTALS = ["requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "errors"]
_DAY = 86400
_MONDAY = 4 * _DAY  # 1970-01-01 was a Thursday: weeks are counted from Monday 1970-01-05


# ---------------------------------------------------------------- helpers


def _codes(col: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Integer group codes (small dtype) and labels; null is its own group."""
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
    """Smallest code dtype for n groups: bincount and masks read fewer bytes."""
    return np.int8 if n < 127 else np.int16 if n < 32_767 else np.int32 if n < 2**31 - 1 else np.int64


def _arr(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(dtype=np.float64)


def _ints(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(dtype=np.int64)


def _errors(df: pd.DataFrame) -> np.ndarray:
    if "is_error" in df.columns:  # prepare() has read the error column once
        return df["is_error"].to_numpy(dtype=bool)
    err = df["status"].to_numpy() >= 400
    if "error" in df.columns:
        err |= df["error"].notna().to_numpy()
    return err


ANALYSIS_COLUMNS = ("ts", "model", "key_id", "endpoint", "status", "prompt_tokens", "completion_tokens", "cost",
                    "ttft_ms", "total_ms", "start_ms", "error")


def prepare(df: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """The columns the aggregates read (and ``keep``), with categorical group columns, ``error`` as a categorical
    and an ``is_error`` flag. Do it once per load: then filtering copies a few flat arrays, and no aggregate reads an
    object column (~100 ms per 10 million rows each time)."""
    cols = [c for c in (*ANALYSIS_COLUMNS, *keep) if c in df.columns]
    out = df[cols].copy(deep=False) if cols else df.copy(deep=False)
    for col in ("model", "key_id", "endpoint"):
        if col in out.columns and not isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype("category")
    if "status" in out.columns:
        err = _errors(df)
        out["is_error"] = err
        if "error" in out.columns and not isinstance(out["error"].dtype, pd.CategoricalDtype):
            rows = np.flatnonzero(err)  # messages only on error rows: factorize those few, not every row
            codes = np.full(len(out), -1, dtype=np.int32)
            sub, labels = pd.factorize(out["error"].to_numpy()[rows], use_na_sentinel=True)
            codes[rows] = sub
            out["error"] = pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))
    return out


def filter_mask(df: pd.DataFrame, **allowed: Sequence[Any] | None) -> np.ndarray | None:
    """Rows whose column value is in ``allowed[column]`` (None or empty: no condition); None when nothing filters.

    Categorical columns are tested on their codes (a lookup table), never on strings."""
    mask: np.ndarray | None = None
    for col, values in allowed.items():
        if not values or col not in df.columns:
            continue
        codes, labels = _codes(df[col])
        wanted = set(values)
        table = np.fromiter((lab in wanted for lab in labels), dtype=bool, count=len(labels))
        m = table[codes] if len(labels) else np.zeros(len(df), dtype=bool)
        mask = m if mask is None else mask & m
    return mask


def _sorted(x: np.ndarray) -> bool:
    return bool(np.all(x[1:] >= x[:-1]))


def _group_sums(df: pd.DataFrame, codes: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per-code sums of the standard totals (codes in ``range(n)``, any order)."""
    p, c = _ints(df, "prompt_tokens"), _ints(df, "completion_tokens")
    err = _errors(df)
    out = {"requests": np.bincount(codes, minlength=n)[:n],
           "prompt_tokens": np.rint(np.bincount(codes, weights=p, minlength=n)).astype(np.int64),
           "completion_tokens": np.rint(np.bincount(codes, weights=c, minlength=n)).astype(np.int64)}
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    out["cost"] = np.bincount(codes, weights=_arr(df, "cost"), minlength=n)
    out["errors"] = np.bincount(codes[err], minlength=n)[:n]  # errors are few: count only their codes
    return out


def _segment_sums(df: pd.DataFrame, starts: np.ndarray) -> dict[str, np.ndarray]:
    """The standard totals of consecutive row segments beginning at ``starts`` (a ts-sorted frame's buckets)."""
    n = len(df)
    counts = np.diff(starts, append=n)
    idx = np.minimum(starts, max(n - 1, 0))
    nonempty = counts > 0

    def seg(x: np.ndarray) -> np.ndarray:
        return np.where(nonempty, np.add.reduceat(x, idx), 0)

    p, c = seg(_ints(df, "prompt_tokens")), seg(_ints(df, "completion_tokens"))
    err_rows = np.flatnonzero(_errors(df))
    errors = np.bincount(np.searchsorted(starts, err_rows, side="right") - 1, minlength=len(starts))
    return {"requests": counts, "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
            "cost": seg(_arr(df, "cost")).astype(np.float64), "errors": errors[:len(starts)]}


def _empty(first: Sequence[str], rest: Sequence[str] = _TOTALS) -> pd.DataFrame:
    """No rows, with the columns and dtypes a non-empty answer has (labels are objects, not NaN floats)."""
    return pd.DataFrame({**{c: pd.Series(dtype=object) for c in first},
                         **{c: pd.Series(dtype="float64" if c == "cost" else "int64") for c in rest}})


def _by(df: pd.DataFrame, col: str) -> pd.DataFrame:
    if len(df) == 0:
        return _empty([col])
    codes, labels = _codes(df[col])
    out = pd.DataFrame({col: pd.Series(labels, dtype=object), **_group_sums(df, codes, len(labels))})
    out = out[out["requests"] > 0]
    return out.sort_values(["cost", "requests"], ascending=False, kind="stable").reset_index(drop=True)


def _step_origin(freq: str) -> tuple[int, int]:
    """Bucket length and origin (epoch seconds) of a fixed frequency; weeks start on Monday."""
    if freq.upper() in ("W", "1W", "W-MON"):
        return 7 * _DAY, _MONDAY
    offset = to_offset(freq.replace("H", "h") if freq.endswith("H") else freq)
    try:
        nanos = offset.nanos
    except ValueError:
        raise ValueError(f"freq {freq!r} is not a fixed duration (use e.g. 'W', 'D', 'h', '15min')") from None
    if nanos % 1_000_000_000 or nanos <= 0:
        raise ValueError(f"freq {freq!r} must be a whole number of seconds")
    return nanos // 1_000_000_000, 0


def _bucketed(df: pd.DataFrame, freq: str) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Bucket start times (gaps included) and the standard totals per bucket."""
    step, origin = _step_origin(freq)
    ts = _arr(df, "ts")
    lo, hi = int((ts.min() - origin) // step), int((ts.max() - origin) // step)
    edges = np.arange(lo, hi + 1, dtype=np.int64) * step + origin
    times = pd.to_datetime(edges, unit="s", utc=True)
    if _sorted(ts):  # the store's order: bucket edges by binary search, no per-row code
        return times, _segment_sums(df, np.searchsorted(ts, edges.astype(np.float64), side="left"))
    codes = ((ts - origin) // step).astype(np.int64) - lo
    return times, _group_sums(df, codes, hi - lo + 1)


# ---------------------------------------------------------------- aggregates


def by_model(df: pd.DataFrame) -> pd.DataFrame:
    """Totals per model: requests, prompt/completion/total tokens, cost, errors; dearest first."""
    return _by(df, "model")


def by_key(df: pd.DataFrame) -> pd.DataFrame:
    """Totals per API key (``key_id`` None: requests without a key); dearest first."""
    return _by(df, "key_id")


def by_pair(df: pd.DataFrame, first: str = "model", second: str = "key_id") -> pd.DataFrame:
    """Totals per (first, second) pair present, e.g. each model's keys for a drill-down; dearest first."""
    if len(df) == 0:
        return _empty([first, second])
    c1, l1 = _codes(df[first])
    c2, l2 = _codes(df[second])
    codes = c1.astype(np.int64) * len(l2) + c2
    sums = _group_sums(df, codes, len(l1) * len(l2))
    keep = np.flatnonzero(sums["requests"] > 0)
    out = pd.DataFrame({first: pd.Series([l1[i // len(l2)] for i in keep], dtype=object),
                        second: pd.Series([l2[i % len(l2)] for i in keep], dtype=object),
                        **{k: v[keep] for k, v in sums.items()}})
    return out.sort_values(["cost", "requests"], ascending=False, kind="stable").reset_index(drop=True)


def by_period(df: pd.DataFrame, freq: str = "D", by: str | None = None) -> pd.DataFrame:
    """Totals per time bucket (``freq`` "W", or any fixed pandas frequency: "D", "h", "15min"), gaps as zeros.

    With ``by`` (e.g. "model"): one row per bucket and value present, for stacked charts (no gap rows)."""
    step, origin = _step_origin(freq)
    if len(df) == 0:
        return _empty(["time", *([by] if by else [])]).astype({"time": "datetime64[ns, UTC]"})
    if by is None:
        times, sums = _bucketed(df, freq)
        return pd.DataFrame({"time": times, **sums})
    bucket = (_arr(df, "ts") - origin) // step
    lo = int(bucket.min())
    labels_codes, labels = _codes(df[by])
    codes = (bucket.astype(np.int64) - lo) * len(labels) + labels_codes
    sums = _group_sums(df, codes, (int(bucket.max()) - lo + 1) * len(labels))
    keep = np.flatnonzero(sums["requests"] > 0)
    times = pd.to_datetime((keep // len(labels) + lo) * step + origin, unit="s", utc=True)
    return pd.DataFrame({"time": times, by: pd.Series([labels[i % len(labels)] for i in keep], dtype=object),
                         **{k: v[keep] for k, v in sums.items()}})


def errors_by_status(df: pd.DataFrame) -> pd.DataFrame:
    """Error rows per HTTP status (0: failed before an answer), with their share of all requests; most first."""
    cols = ["status", "errors", "share", "example"]
    err = _errors(df) if len(df) else np.zeros(0, dtype=bool)
    if not err.any():
        return pd.DataFrame({"status": pd.Series(dtype="int64"), "errors": pd.Series(dtype="int64"),
                             "share": pd.Series(dtype="float64"), "example": pd.Series(dtype=object)})
    rows = np.flatnonzero(err)
    status = df["status"].to_numpy()[rows].astype(np.int64)
    values, first, counts = np.unique(status, return_index=True, return_counts=True)
    example = df["error"].to_numpy()[rows[first]] if "error" in df.columns else [None] * len(values)
    out = pd.DataFrame({"status": values, "errors": counts, "share": counts / len(df),
                        "example": pd.Series(list(example), dtype=object)}, columns=cols)
    return out.sort_values("errors", ascending=False, kind="stable").reset_index(drop=True)


def latency_percentiles(df: pd.DataFrame, by: str | None = "model", column: str | None = None) -> pd.DataFrame:
    """p50/p95/p99 of total_ms and ttft_ms (ms) per ``by`` group (None: one overall row), successful rows only.

    Linear interpolation (numpy's and pandas' default). ttft percentiles ignore rows without a TTFT. ``column``
    adds that column's percentiles over the rows where it is > 0 (e.g. "start_ms": the requests that waited for a
    cold start)."""
    metrics = ["total_ms", "ttft_ms", *([column] if column and column in df.columns else [])]
    cols = ["requests"] + [f"{m}_p{int(q)}" for m in metrics for q in _PCTS]
    first = [by] if by else []
    ok = ~_errors(df) if len(df) else np.zeros(0, dtype=bool)
    if not ok.any():
        return pd.DataFrame({**{c: pd.Series(dtype=object) for c in first},
                             **{c: pd.Series(dtype="int64" if c == "requests" else "float64") for c in cols}})
    if by:
        codes, labels = _codes(df[by])
    else:
        codes, labels = np.zeros(len(df), dtype=np.int8), ["all"]
    n = len(labels)
    counts = np.bincount(codes[ok], minlength=n)[:n]
    parts = [counts[:, None]]
    for m in metrics:
        x = _arr(df, m)
        rows = ok & ((x > 0) if m == column else ~np.isnan(x))  # one mask, one copy of each array
        parts.append(group_percentiles(codes[rows], n, x[rows]))
    table = np.hstack(parts)
    keep = np.flatnonzero(counts)
    out = pd.DataFrame(table[keep], columns=cols)
    out["requests"] = out["requests"].astype(np.int64)
    if by:
        out.insert(0, by, pd.Series([labels[i] for i in keep], dtype=object))
    return out.sort_values("requests", ascending=False, kind="stable").reset_index(drop=True)


def throughput(df: pd.DataFrame, freq: str = "1min") -> pd.DataFrame:
    """Requests/s and tokens/s (all, and completion only) per bucket of finished requests, gaps as zeros."""
    step, _ = _step_origin(freq)
    cols = ["time", "requests", "requests_per_s", "tokens_per_s", "completion_tokens_per_s"]
    if len(df) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "requests" else "float64") for c in cols[1:]}
                            ).reindex(columns=cols).astype({"time": "datetime64[ns, UTC]"})
    times, sums = _bucketed(df, freq)
    return pd.DataFrame({
        "time": times, "requests": sums["requests"], "requests_per_s": sums["requests"] / step,
        "tokens_per_s": sums["total_tokens"] / step, "completion_tokens_per_s": sums["completion_tokens"] / step,
    })


def month_forecast(df: pd.DataFrame, now: float) -> dict[str, Any]:
    """Month-to-date cost (UTC calendar month of ``now``), a month-end forecast and its band.

    With >= 3 complete days so far, a straight line fitted (``numpy.polyfit``) to the complete days' costs predicts the
    rest of the month (today's remaining fraction and each later day, never below 0); with fewer, the forecast is
    ``daily_average * days_in_month``. ``days_elapsed`` is fractional: ``daily_average = month_to_date / days_elapsed``.
    The band (``forecast_low``/``forecast_high``) is about 95 %: the fit's daily residual spread (1.96 sigma,
    growing with the square root of the days left), never below what is already spent; with fewer than 3 complete
    days it is the month-to-date cost up to twice the projected rest.
    """
    start = period_start(now)
    day = datetime.fromtimestamp(now, tz=timezone.utc)
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    days_elapsed = max(0.0, (now - start) / 86400.0)
    mtd = 0.0
    daily = np.zeros(0)
    n_full = int(days_elapsed)
    if len(df):
        ts, cost = _arr(df, "ts"), _arr(df, "cost")
        if _sorted(ts):
            lo, hi = int(np.searchsorted(ts, start, side="left")), int(np.searchsorted(ts, now, side="right"))
            mtd = float(cost[lo:hi].sum())
            if n_full >= 3:
                edges = np.searchsorted(ts[lo:hi], start + _DAY * np.arange(n_full + 1, dtype=np.float64))
                daily = np.diff(np.concatenate(([0.0], np.cumsum(cost[lo:hi]))).take(edges))
        else:
            mask = (ts >= start) & (ts <= now)
            mtd = float(cost[mask].sum())
            if n_full >= 3:
                d = (ts[mask] - start).astype(np.int64) // _DAY
                daily = np.bincount(d, weights=cost[mask], minlength=n_full + 1)[:n_full]
    average = mtd / days_elapsed if days_elapsed > 0 else 0.0
    left = max(0.0, days_in_month - days_elapsed)
    if n_full >= 3 and len(daily) == n_full:
        x = np.arange(n_full, dtype=np.float64)
        slope, intercept = np.polyfit(x, daily, 1)
        future = np.maximum(0.0, slope * np.arange(n_full, days_in_month) + intercept)
        rest = (1.0 - (days_elapsed - n_full)) * future[0] + future[1:].sum() if future.size else 0.0
        forecast, method = mtd + float(rest), "trend"
        sigma = float(np.std(daily - (slope * x + intercept), ddof=2)) if n_full > 2 else 0.0
        spread = 1.96 * sigma * math.sqrt(left)
        low, high = max(mtd, forecast - spread), forecast + spread
    else:
        forecast, method = average * days_in_month, "average"
        low, high = mtd, mtd + 2.0 * (forecast - mtd)
    return {"month_to_date_cost": mtd, "month_end_forecast": float(forecast), "forecast_low": float(low),
            "forecast_high": float(high), "daily_average": float(average), "days_elapsed": days_elapsed,
            "days_in_month": days_in_month, "method": method}


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
    return {
        "total_requests": len(df),
        "total_tokens": int(_ints(df, "prompt_tokens").sum() + _ints(df, "completion_tokens").sum()) if len(df) else 0,
        "total_cost": float(_arr(df, "cost").sum()) if len(df) else 0.0,
        "total_errors": int(_errors(df).sum()) if len(df) else 0,
        "by_model": records(by_model(df)),
        "by_key": records(by_key(df)),
        "by_day": records(by_period(df, "D")),
        "forecast": month_forecast(df, now),
    }
