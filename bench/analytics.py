"""Time every usage aggregate on a synthetic month of 1,000,000 requests (8 models, 50 keys).

Run: ``python bench/analytics.py [--rows N] [--repeat R]``. Prints one line per aggregate (median of R runs) and
the total; the target is the whole set under 300 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from llm_manager.accounting import analytics
from llm_manager.accounting.pricing import Pricing, PromptTier, VolumeTier, reprice

TARGET_MS = 300.0


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
    prompt = rng.integers(10, 40_000, rows)
    completion = rng.integers(1, 2_000, rows)
    status = np.where(rng.random(rows) < 0.02, 500, 200)
    ttft = rng.gamma(2.0, 80.0, rows)
    ttft[rng.random(rows) < 0.1] = np.nan
    df = pd.DataFrame({
        "id": np.arange(1, rows + 1), "ts": ts, "model": model, "alias": pd.Categorical(model),
        "key_id": pd.Categorical.from_codes(key_codes, categories=keys),
        "client_ip": "127.0.0.1", "endpoint": pd.Categorical(["chat/completions"] * rows),
        "status": status, "stream": rng.random(rows) < 0.5, "prompt_tokens": prompt,
        "completion_tokens": completion, "total_tokens": prompt + completion, "estimated": False,
        "queue_ms": rng.exponential(5.0, rows), "start_ms": 0.0, "ttft_ms": ttft,
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    t0 = time.perf_counter()
    df, now = synthetic_frame(args.rows)
    print(f"built {len(df):,} rows in {(time.perf_counter() - t0) * 1000:.0f} ms; median of {args.repeat} runs\n")
    prices = pricing_table()
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("by_model", lambda: analytics.by_model(df)),
        ("by_key", lambda: analytics.by_key(df)),
        ("by_period D", lambda: analytics.by_period(df, "D")),
        ("by_period h", lambda: analytics.by_period(df, "h")),
        ("latency_percentiles", lambda: analytics.latency_percentiles(df)),
        ("throughput 1min", lambda: analytics.throughput(df, "1min")),
        ("month_forecast", lambda: analytics.month_forecast(df, now)),
        ("reprice", lambda: reprice(df, prices)),
    ]
    total = 0.0
    print(f"{'aggregate':<22}{'median ms':>10}{'min ms':>10}")
    print("-" * 42)
    for name, fn in cases:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        med = statistics.median(times)
        total += med
        print(f"{name:<22}{med:>10.1f}{min(times):>10.1f}")
    print("-" * 42)
    verdict = "OK" if total < TARGET_MS else "OVER"
    print(f"{'total':<22}{total:>10.1f}   target < {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
