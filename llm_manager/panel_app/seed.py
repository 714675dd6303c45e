"""A usage database with a plausible month in it, written through the real ``UsageStore``: for trying the analytics
app without traffic (``python -m llm_manager.panel_app.seed usage.db``) and for its browser tests.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from ..accounting.record import UsageRecord
from ..accounting.schema import AlertLog, Budget
from ..accounting.store import UsageStore

MODELS = {"chat-large": (3.0, 15.0), "chat-small": (0.15, 0.6), "embedder": (0.02, 0.0)}  # price per 1M tokens
KEYS = ["team-research", "team-product", "ci-bot", None]
ENDPOINTS = {"chat-large": "chat/completions", "chat-small": "messages", "embedder": "embeddings"}


def seed(path: Path, days: int = 20, per_day: int = 300, now: float | None = None, seed: int = 1) -> dict[str, int]:
    """Write ``days`` of requests (3 models, 4 keys, some errors and cold starts), start/ready events, two alerts
    and a monthly budget into the SQLite file ``path``; returns what was written."""
    rng = np.random.default_rng(seed)
    now = now or time.time()
    store = UsageStore(f"sqlite:///{path}", path.parent, flush_interval=3600)
    n = 0
    try:
        for day in range(days):
            base = now - (days - day) * 86400
            for i in range(per_day):
                model = list(MODELS)[int(rng.integers(0, 3))]
                key = KEYS[int(rng.integers(0, len(KEYS)))]
                status = int(rng.choice([200] * 40 + [429, 500]))
                prompt, completion = int(rng.integers(50, 4000)), int(rng.integers(0, 800))
                if model == "embedder":
                    completion = 0
                price_in, price_out = MODELS[model]
                cold = i == 0
                ttft = float(rng.gamma(2.0, 60.0)) + (1500.0 if cold else 0.0)
                store.record(UsageRecord(
                    model=model, endpoint=ENDPOINTS[model], status=status, key_id=key, client_ip="127.0.0.1",
                    stream=model != "embedder", prompt_tokens=prompt if status < 400 else 0,
                    completion_tokens=completion if status < 400 else 0, start_ms=1500.0 if cold else 0.0,
                    ttft_ms=ttft if model != "embedder" and status < 400 else None,
                    total_ms=ttft + float(rng.gamma(3.0, 150.0)),
                    cost=(prompt * price_in + completion * price_out) / 1e6 if status < 400 else 0.0,
                    error=None if status < 400 else f"upstream answered {status}",
                    ts=base + i * (86400 / per_day) + float(rng.uniform(0, 60))))
                n += 1
                if cold:
                    store.record_event(model, "start", "cold start", ts=base + i * (86400 / per_day))
                    store.record_event(model, "ready", "", ts=base + i * (86400 / per_day) + 1.5)
        store.flush()
        with store.engine.begin() as conn:
            conn.execute(insert(AlertLog.__table__), [  # type: ignore[attr-defined]
                {"ts": now - 3 * 86400, "kind": "budget", "subject": "global", "message": "80 % of the monthly budget",
                 "payload": "{}", "delivery": json.dumps({"https://hooks.example/x": "delivered"})},
                {"ts": now - 86400, "kind": "crash_loop", "subject": "chat-large", "message": "3 crashes in 10 min",
                 "payload": "{}", "delivery": json.dumps({"https://hooks.example/x": "failed: timeout"})}])
            conn.execute(insert(Budget.__table__), [  # type: ignore[attr-defined]
                {"scope": "global", "key_id": None, "period": "month", "limit_value": 50.0, "unit": "cost"}])
    finally:
        store.close()
    return {"requests": n, "alerts": 2}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "usage.db").resolve()
    print(seed(target))
