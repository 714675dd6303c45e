"""Small pure helpers that turn usage records into the frames and numbers the views draw.

Kept apart from the views so they are testable without Panel, and so the in-memory fallback produces the same
columns as ``UsageStore.requests_frame`` (the cost view then needs one code path).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd

from ..accounting import analytics
from ..accounting.record import UsageRecord

COLUMNS = ["ts", "model", "alias", "key_id", "client_ip", "endpoint", "status", "stream", "prompt_tokens",
           "completion_tokens", "total_tokens", "estimated", "queue_ms", "start_ms", "ttft_ms", "total_ms", "cost",
           "error"]


_FIELDS = [f.name for f in dataclasses.fields(UsageRecord)]
_GET = attrgetter(*_FIELDS)


def _as_dict(rec: Any) -> dict[str, Any]:
    """``UsageRecord.to_dict()``, ~10x faster than its ``dataclasses.asdict``; dicts pass through."""
    if isinstance(rec, dict):
        return rec
    d = dict(zip(_FIELDS, _GET(rec), strict=True))
    d["total_tokens"] = rec.prompt_tokens + rec.completion_tokens
    return d


def records_to_dicts(records: Iterable[UsageRecord]) -> list[dict[str, Any]]:
    return [_as_dict(r) for r in records]


def frame_from_records(records: Iterable[Any]) -> pd.DataFrame:
    """UsageRecords (or their dicts) as a frame shaped like the store's ``requests_frame``."""
    rows = [_as_dict(r) for r in records]
    df = pd.DataFrame.from_records(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    df["total_tokens"] = df["prompt_tokens"].fillna(0) + df["completion_tokens"].fillna(0)
    df = df.astype({"ts": "float64", "status": "int64", "prompt_tokens": "int64", "completion_tokens": "int64",
                    "total_tokens": "int64", "cost": "float64", "ttft_ms": "float64", "total_ms": "float64"})
    df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def throughput_from_records(records: Sequence[dict[str, Any]], window: float = 5.0,
                            now: float | None = None) -> dict[str, Any]:
    """Requests/s and tokens/s over the last ``window`` s, shaped like ``LiveUsage.throughput()``."""
    now = now or time.time()
    per: dict[str, list[float]] = defaultdict(lambda: [0, 0])
    for r in records:
        if r.get("ts", 0) >= now - window:
            per[r["model"]][0] += 1
            per[r["model"]][1] += r.get("prompt_tokens", 0) + r.get("completion_tokens", 0)
    return {
        "ts": now, "requests_per_s": sum(v[0] for v in per.values()) / window,
        "tokens_per_s": sum(v[1] for v in per.values()) / window,
        "by_model": {m: {"requests_per_s": v[0] / window, "tokens_per_s": v[1] / window} for m, v in per.items()},
    }


def _pcts(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.asarray(values, dtype=float), [50, 95])
    return float(p50), float(p95)


def latency_stats(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """p50/p95 of total and TTFT ms per model and for "all", successful requests only."""
    total: dict[str, list[float]] = defaultdict(list)
    ttft: dict[str, list[float]] = defaultdict(list)
    count: dict[str, int] = defaultdict(int)
    for r in records:
        if r.get("status", 0) >= 400:
            continue
        for key in ("all", r["model"]):
            count[key] += 1
            total[key].append(r.get("total_ms") or 0.0)
            if r.get("ttft_ms") is not None:
                ttft[key].append(r["ttft_ms"])
    out = {}
    for key in count:
        p50, p95 = _pcts(total[key])
        t50, t95 = _pcts(ttft[key])
        out[key] = {"requests": count[key], "p50_ms": p50, "p95_ms": p95, "ttft_p50_ms": t50, "ttft_p95_ms": t95}
    return out


def ago(ts: float | None, now: float | None = None) -> str:
    """"12 s ago" / "3 min ago" / "—": last-used times a person reads at a glance."""
    if not ts:
        return "—"
    d = max(0.0, (now or time.time()) - ts)
    if d < 60:
        return f"{d:.0f} s ago"
    if d < 3600:
        return f"{d / 60:.0f} min ago"
    if d < 86400:
        return f"{d / 3600:.1f} h ago"
    return f"{d / 86400:.1f} d ago"


def minutes(s: float | None) -> str:
    """A duration to the minute ("< 1 min", "12 min", "3.5 h"): a table cell that changed every second made
    Panel rebuild the whole table in the browser every second (each patch is a Tabulator setData), and a click on
    a row landing across a rebuild was lost."""
    if s is None:
        return "—"
    if s < 60:
        return "< 1 min"
    if s < 3600:
        return f"{s // 60:.0f} min"
    return f"{s / 3600:.1f} h"


def minutes_ago(ts: float | None, now: float | None = None) -> str:
    """"< 1 min ago" / "12 min ago": :func:`minutes` since ``ts``."""
    if not ts:
        return "—"
    return minutes(max(0.0, (now or time.time()) - ts)) + " ago"


def duration(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def cost_summary(df: pd.DataFrame, now: float) -> dict[str, Any]:
    """Every number and frame the cost view shows (run it in a worker thread: a store's frame can be large)."""
    return _labelled({"requests": len(df), "tokens": int(df["total_tokens"].sum()) if len(df) else 0,
                      "cost": float(df["cost"].sum()) if len(df) else 0.0, "by_model": analytics.by_model(df),
                      "by_key": analytics.by_key(df), "by_day": analytics.by_period(df, "D"),
                      "forecast": analytics.month_forecast(df, now)})


def summary_from_api(body: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/usage/summary`` (analytics.summary as JSON) in the shape :func:`cost_summary` returns."""
    by_day = pd.DataFrame(body.get("by_day") or [], columns=["time", "requests", "total_tokens", "cost"])
    by_day["time"] = pd.to_datetime(by_day["time"], utc=True)
    frames = {name: pd.DataFrame(body.get(name) or [], columns=[col, "requests", "prompt_tokens",
                                                               "completion_tokens", "total_tokens", "cost", "errors"])
              for name, col in (("by_model", "model"), ("by_key", "key_id"))}
    return _labelled({"requests": int(body.get("total_requests", 0)), "tokens": int(body.get("total_tokens", 0)),
                      "cost": float(body.get("total_cost", 0.0)), **frames, "by_day": by_day,
                      "forecast": body.get("forecast") or {"month_to_date_cost": 0.0, "month_end_forecast": 0.0}})


def _labelled(summary: dict[str, Any]) -> dict[str, Any]:
    """Bar labels: "(no key)" for requests without an API key, "MM-DD" for days."""
    by_key, by_day = summary["by_key"], summary["by_day"]
    keys = [k if isinstance(k, str) and k else "(no key)" for k in by_key["key_id"]]
    by_key["key"] = pd.Series(keys, index=by_key.index, dtype=object)
    by_day["day"] = by_day["time"].dt.strftime("%m-%d") if len(by_day) else pd.Series(dtype=object)
    return summary


def monthly_budget(budgets: Iterable[Any]) -> float | None:
    """The first global, monthly, cost budget among config dicts, budget-status dicts or store rows (None: none)."""
    for b in budgets:
        get = b.get if isinstance(b, dict) else lambda k, d=None, b=b: getattr(b, k, d)
        if get("key_id") or get("key") or get("scope", "global") != "global":
            continue
        if get("period", "month") != "month" or get("unit", "cost") != "cost":
            continue
        for field in ("limit_value", "limit", "amount"):
            value = get(field)
            if isinstance(value, int | float) and value > 0:
                return float(value)
    return None
