"""Live counters over recent requests, kept in memory for the event stream and the dashboards.

Bounded (a deque of the last N records), so a long-running server does not grow; history lives
in the usage store.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any

from .record import UsageRecord


class LiveUsage:
    def __init__(self, capacity: int = 20000):
        self.recent: deque[UsageRecord] = deque(maxlen=capacity)
        self.totals: dict[str, dict[str, float]] = defaultdict(
            lambda: {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})

    def add(self, rec: UsageRecord) -> None:
        self.recent.append(rec)
        t = self.totals[rec.model]
        t["requests"] += 1
        t["errors"] += rec.status >= 400
        t["prompt_tokens"] += rec.prompt_tokens
        t["completion_tokens"] += rec.completion_tokens
        t["cost"] += rec.cost

    def throughput(self, window: float = 5.0, now: float | None = None) -> dict[str, Any]:
        """Requests/s and tokens/s over the last ``window`` seconds, overall and per model."""
        now = now or time.time()
        since = now - window
        per: dict[str, list[float]] = defaultdict(lambda: [0, 0])
        for rec in reversed(self.recent):
            if rec.ts < since:
                break
            per[rec.model][0] += 1
            per[rec.model][1] += rec.completion_tokens + rec.prompt_tokens
        req = sum(v[0] for v in per.values())
        tok = sum(v[1] for v in per.values())
        return {
            "ts": now, "requests_per_s": req / window, "tokens_per_s": tok / window,
            "by_model": {m: {"requests_per_s": v[0] / window, "tokens_per_s": v[1] / window} for m, v in per.items()},
        }

    def records(self, limit: int = 100) -> list[dict[str, Any]]:
        return [r.to_dict() for r in list(self.recent)[-limit:]]
