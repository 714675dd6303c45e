"""The Manager's usage, cost, pricing and key methods (same names as ``Client``'s).

These block (database queries, analytics): the HTTP handlers call them in a worker thread; a
notebook calls them directly.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pandas as pd

from .errors import BadRequest, NotFound
from .security import hash_key, new_secret
from .usage import analytics
from .usage.pricing import parse_pricing, period_start, reprice
from .usage.store import ApiKey

DAY = 86400.0
FIRST_KEY_WARNING = ("this is the first API key, so authentication is now ON: every /v1 request needs "
                     "'Authorization: Bearer <key>' and requests without a key get 401 (until now /v1 was open to "
                     "anyone). Give your clients a key; revoking every key opens /v1 again.")


class AccountingMixin:
    """Mixed into Manager; relies on its ``store``, ``usage``, ``pricer``, ``security`` and ``resolve``."""

    store: Any
    usage: Any
    pricer: Any
    security: Any

    def resolve(self, name: str) -> Any:  # provided by Manager
        raise NotImplementedError

    def usage_frame(self, days: float = 30, model: str | None = None, key: str | None = None,
                    since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """The request log (the store's, else the in-memory recent records) as a DataFrame."""
        since = since if since is not None else time.time() - days * DAY
        if self.store is not None:
            self.store.flush()  # include what was just served
            return self.store.requests_frame(since=since, until=until, model=model, key_id=key)
        df = pd.DataFrame([r.to_dict() for r in self.usage.recent])
        if df.empty:
            return df
        df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        mask = df["ts"] >= since
        if until is not None:
            mask &= df["ts"] < until
        if model:
            mask &= df["model"] == model
        if key:
            mask &= df["key_id"] == key
        return df[mask]

    def usage_summary(self, days: float = 30) -> dict[str, Any]:
        """Totals, by model, key and day, the month-end forecast and budget status."""
        now = time.time()
        since = now - days * DAY
        df = self.usage_frame(since=min(since, period_start(now)))
        out = analytics.summary(df[df["ts"] >= since] if not df.empty else df, now)
        out["forecast"] = analytics.month_forecast(df, now)
        out["currency"] = self.pricer.currency() if self.pricer is not None else "USD"
        out["budgets"] = self.budgets()
        return out

    def prices(self) -> dict[str, Any]:
        prices = self.pricer.prices if self.pricer is not None else {}
        return {name: (p.to_dict() if p else None) for name, p in prices.items()}

    def set_price(self, model: str, pricing: dict[str, Any] | None) -> dict[str, Any]:
        """Change a model's live price (a pricing block as in config.json; None or {}: free)."""
        name = self.resolve(model).name
        p = self.pricer.set_price(name, pricing or None)
        return {"model": name, "pricing": p.to_dict() if p else None}

    def reprice(self, pricing: dict[str, dict[str, Any]], days: float = 30) -> dict[str, Any]:
        """What the last ``days`` would have cost at other prices (nothing is changed)."""
        if not isinstance(pricing, dict):
            raise BadRequest("pricing: expected {model: pricing block}", param="pricing")
        new = dict(self.pricer.prices) if self.pricer is not None else {}
        for name, block in pricing.items():
            new[self.resolve(name).name] = parse_pricing(block, f"pricing.{name}")
        df = self.usage_frame(days=days)
        if df.empty:
            return {"requests": 0, "current_cost": 0.0, "repriced_cost": 0.0, "by_model": []}
        cost = reprice(df, new)
        per = pd.DataFrame({"model": df["model"].astype(str), "current": df["cost"], "repriced": cost})
        g = per.groupby("model", sort=True)[["current", "repriced"]].sum().reset_index()
        return {"requests": len(df), "current_cost": float(df["cost"].sum()), "repriced_cost": float(cost.sum()),
                "by_model": analytics.records(g)}

    def keys(self) -> list[dict[str, Any]]:
        """Every API key (never the secrets): those created at run time and those in the config."""
        rows = self.store.list_keys() if self.store is not None else []
        out = [{"id": r.id, "name": r.name, "prefix": r.prefix, "models": json.loads(r.models or "[]"),
                "created_at": r.created_at, "revoked": r.revoked_at is not None, "source": "store"} for r in rows]
        if self.security is not None:
            out += [{"id": k.id, "name": k.name, "prefix": "", "models": list(k.models), "created_at": None,
                     "revoked": False, "source": "config"} for k in self.security.keys.values() if k.source == "config"]
        return out

    def create_key(self, name: str, models: list[str] | None = None) -> dict[str, Any]:
        """A new API key; its secret is in the answer's ``key`` and is never shown again.

        When it is the first key, /v1 stops being open: the answer's ``warning`` says so.
        """
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name: required", param="name")
        models = models or []
        if not isinstance(models, list) or not all(isinstance(x, str) for x in models):
            raise BadRequest("models: expected a list of model names", param="models")
        if self.store is None:
            raise BadRequest("API keys need the usage store")
        models = [self.resolve(x).name for x in models]
        secret = new_secret()
        row = ApiKey(id="key-" + uuid.uuid4().hex[:12], name=name.strip(), key_hash=hash_key(secret),
                     prefix=secret[:12], models=json.dumps(models))
        was_open = not self.security.auth_required
        self.store.add_key(row)
        self.security.load_store_keys()
        out = {"id": row.id, "name": row.name, "key": secret, "prefix": row.prefix, "models": models}
        if was_open:  # nobody needed a key until now: say so where the key is shown, not after the first 401
            out["warning"] = FIRST_KEY_WARNING
        return out

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        if self.store is None or not self.store.revoke_key(key_id):
            raise NotFound(f"no key {key_id}")
        self.security.keys = {h: k for h, k in self.security.keys.items() if k.id != key_id}
        return {"id": key_id, "revoked": True}

    def budgets(self) -> list[dict[str, Any]]:
        return self.security.budget_status() if self.security is not None else []
