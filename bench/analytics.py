"""Time every aggregate the dashboard uses on synthetic months of 1 million and 10 million requests, side by side.

Run: ``python bench/analytics.py [--rows 1000000,10000000] [--repeat 3]``. Each frame is shaped like
``UsageStore.requests_frame`` (March 2025 UTC, sorted by ts, 8 models, 50 keys, 3 endpoints, 2 % errors, 5 % cold
starts). Prints the median of ``--repeat`` runs per aggregate and rows count, the load average before and after,
and a verdict per aggregate against the goal: each under 1 s at the largest size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from llm_manager.accounting import analytics
from llm_manager.accounting.pricing import Pricing, PromptTier, VolumeTier, reprice
from llm_manager.panel_app import whatif

GOAL_MS = 1000.0
REFERENCE = "pricing.reprice (reference)"  # the general one (any row order); the app uses whatif.reprice


def synthetic_frame(rows: int = 1_000_000, seed: int = 7) -> tuple[pd.DataFrame, float]:
    """A frame shaped like ``UsageStore.requests_frame``: March 2025 (UTC), sorted by ts; returns (frame, now)."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp()
    now = start + 30 * 86400 + 12 * 3600
    ts = np.sort(rng.uniform(start, now, rows))
    models = [f"model-{i}" for i in range(8)]
    keys = [f"key-{i:02d}" for i in range(50)]
    model = pd.Categorical.from_codes(rng.integers(0, 8, rows, dtype=np.int8), categories=models)
    key_codes = rng.integers(-1, 50, rows, dtype=np.int8)  # -1: no key
    endpoints = ["/v1/chat/completions", "/v1/embeddings", "/v1/messages"]
    prompt = rng.integers(10, 40_000, rows)
    completion = rng.integers(1, 2_000, rows)
    status = np.where(rng.random(rows) < 0.02, rng.choice([429, 500, 502], rows), 200)
    ttft = rng.gamma(2.0, 80.0, rows)
    ttft[rng.random(rows) < 0.1] = np.nan
    start_ms = np.where(rng.random(rows) < 0.05, rng.gamma(4.0, 500.0, rows), 0.0)
    df = pd.DataFrame({
        "id": np.arange(1, rows + 1), "ts": ts, "model": model, "alias": pd.Categorical(model),
        "key_id": pd.Categorical.from_codes(key_codes, categories=keys),
        "client_ip": "127.0.0.1", "endpoint": pd.Categorical.from_codes(rng.integers(0, 3, rows, dtype=np.int8),
                                                                         categories=endpoints),
        "status": status, "stream": rng.random(rows) < 0.5, "prompt_tokens": prompt,
        "completion_tokens": completion, "total_tokens": prompt + completion, "estimated": False,
        "queue_ms": rng.exponential(5.0, rows), "start_ms": start_ms, "ttft_ms": ttft,
        "total_ms": ttft + rng.gamma(3.0, 300.0, rows), "cost": rng.random(rows) * 0.01,
        "error": pd.Series(np.where(status >= 400, "upstream error", None), dtype=object),
    })
    df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    return df, now


def pricing_table() -> dict[str, Pricing | None]:
    tiered = Pricing(0.5, 1.5, volume_tiers=(VolumeTier(1_000_000_000, 0.4, 1.2), VolumeTier(2_000_000_000, 0.3, 1.0)),
                     prompt_tiers=(PromptTier(32_000, 1.0, 3.0),))
    out: dict[str, Pricing | None] = {f"model-{i}": tiered for i in range(6)}
    out["model-6"] = Pricing(0.1, 0.1)
    out["model-7"] = None
    return out


def cases(raw: pd.DataFrame, now: float) -> list[tuple[str, Callable[[], Any]]]:
    """What one dashboard refresh computes, in the order it does (prepare once per load, then the views)."""
    df = analytics.prepare(raw)
    prices = pricing_table()
    models = ["model-1", "model-2", "model-3", "model-4", "model-5", "model-6"]
    keys = [f"key-{i:02d}" for i in range(25)]
    return [
        ("prepare (once per load)", lambda: analytics.prepare(raw)),
        ("filter 6 models 25 keys", lambda: df[analytics.filter_mask(df, model=models, key_id=keys)]),
        ("by_period W", lambda: analytics.by_period(df, "W")),
        ("by_period D", lambda: analytics.by_period(df, "D")),
        ("by_period h", lambda: analytics.by_period(df, "h")),
        ("by_model", lambda: analytics.by_model(df)),
        ("by_key", lambda: analytics.by_key(df)),
        ("by_pair model x key", lambda: analytics.by_pair(df)),
        ("latency_percentiles", lambda: analytics.latency_percentiles(df, column="start_ms")),
        ("errors_by_status", lambda: analytics.errors_by_status(df)),
        ("throughput 1min", lambda: analytics.throughput(df, "1min")),
        ("month_forecast", lambda: analytics.month_forecast(df, now)),
        ("reprice (panel_app/whatif.py)", lambda: whatif.reprice(df, prices)),
        ("what-if by model and day", lambda: whatif.billed_vs_repriced(df, prices, "D")),
        (REFERENCE, lambda: reprice(df, prices)),
    ]


def timed(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", default="1000000,10000000", help="comma-separated frame sizes")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.rows.split(",")]
    load_before = os.getloadavg()
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        t0 = time.perf_counter()
        raw, now = synthetic_frame(n)
        print(f"built {n:,} rows in {(time.perf_counter() - t0):.1f} s")
        results[n] = {name: timed(fn, args.repeat) for name, fn in cases(raw, now)}
        del raw
    load_after = os.getloadavg()
    names = list(results[sizes[0]])
    head = "".join(f"{f'{n:,} rows ms':>20}" for n in sizes)
    print(f"\nmedian of {args.repeat} runs; goal: each aggregate under {GOAL_MS:.0f} ms at {sizes[-1]:,} rows\n")
    print(f"{'aggregate':<26}{head}   verdict")
    print("-" * (26 + 20 * len(sizes) + 10))
    for name in names:
        figures = "".join(f"{results[n][name]:>20.1f}" for n in sizes)
        verdict = "ref" if name == REFERENCE else "OK" if results[sizes[-1]][name] < GOAL_MS else "OVER"
        print(f"{name:<26}{figures}   {verdict}")
    print("-" * (26 + 20 * len(sizes) + 10))
    totals = "".join(f"{sum(v for k, v in results[n].items() if k != REFERENCE):>20.1f}" for n in sizes)
    print(f"{'all but the reference':<26}{totals}")
    print(f"\nload average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
