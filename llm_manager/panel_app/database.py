"""A usage database read on its own, read-only: analyse a store with no manager running.

``DatabaseSource("sqlite:///data/usage.db")`` (or a PostgreSQL URL) serves the analytics views from the tables
``request_log``, ``model_event``, ``alert_log`` and ``budget``. The engine cannot write: SQLite is opened with
``mode=ro``, PostgreSQL sessions are ``READ ONLY``; columns are reflected, so an older schema still reads (a table it
lacks reads as empty). The live views (models, devices, batches) need a manager and are not offered.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, MetaData, create_engine, event, select

from .frames import monthly_budget

_CATEGORICAL = ("model", "alias", "key_id", "endpoint")
_BOOL = ("stream", "estimated", "cached")
_DEFAULTS: dict[str, Any] = {"model": "", "key_id": None, "endpoint": "", "status": 0, "prompt_tokens": 0,
                             "completion_tokens": 0, "total_tokens": 0, "start_ms": 0.0, "ttft_ms": float("nan"),
                             "total_ms": 0.0, "cost": 0.0, "error": None}


def readonly_engine(url: str) -> Engine:
    """An engine that cannot change the database (a file that does not exist is an error, not a new database)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if not path or path == ":memory:":
            raise ValueError(f"{url}: a read-only SQLite URL needs a file path (sqlite:///path/to/usage.db)")
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such database file")
        return create_engine(f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true",
                             connect_args={"check_same_thread": False})
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _readonly(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        dbapi_conn.commit()

    return engine


class TableReader:
    """Rows of the usage tables in a time range as frames, whatever columns this database's schema has."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._meta: MetaData | None = None

    def table(self, name: str) -> Any:
        if self._meta is None:  # reflected once: the columns this database's schema version has
            self._meta = MetaData()
            self._meta.reflect(self.engine)
        return self._meta.tables.get(name)

    def frame(self, name: str, since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """``name``'s rows with ``since <= ts < until`` in ts order (an empty frame when the table is missing)."""
        t = self.table(name)
        if t is None:
            return pd.DataFrame(columns=["ts"])
        stmt = select(t)
        if since is not None and "ts" in t.c:
            stmt = stmt.where(t.c.ts >= since)
        if until is not None and "ts" in t.c:
            stmt = stmt.where(t.c.ts < until)
        if "ts" in t.c:
            stmt = stmt.order_by(t.c.ts, *([t.c.id] if "id" in t.c else []))
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        return df

    def requests(self, since: float | None, until: float | None) -> pd.DataFrame:
        df = self.frame("request_log", since, until)
        for col, default in _DEFAULTS.items():  # columns an older schema lacks, as a new row would have them
            if col not in df.columns:
                df[col] = default
        if "ts" in df.columns:
            df["ts"] = df["ts"].astype("float64")
        for col in ("ttft_ms", "total_ms", "start_ms", "queue_ms", "cost"):
            if col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        for col in ("status", "prompt_tokens", "completion_tokens", "total_tokens"):
            if col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
        for col in _BOOL:
            if col in df.columns:
                df[col] = df[col].astype(bool)
        for col in _CATEGORICAL:
            if col in df.columns:
                df[col] = df[col].astype("category")
        return df

    def alerts(self, since: float | None, until: float | None) -> pd.DataFrame:
        return alerts_frame(self.frame("alert_log", since, until).to_dict("records"))

    def budgets(self) -> list[dict[str, Any]]:
        return self.frame("budget").to_dict("records")


def alerts_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Alert rows (the table's, or ``/api/alerts``'s) as ts, kind, subject, message, delivery (one readable line)."""
    def delivery(value: Any) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except ValueError:
                return value
        if isinstance(value, dict):
            return "; ".join(f"{url}: {state}" for url, state in value.items()) or "log only"
        return "" if value is None else str(value)

    cols = ["ts", "kind", "subject", "message", "delivery"]
    out = pd.DataFrame([{**{c: r.get(c) for c in cols}, "delivery": delivery(r.get("delivery"))} for r in rows],
                       columns=cols)
    out["ts"] = out["ts"].astype("float64")
    return out.sort_values("ts", ascending=False, kind="stable").reset_index(drop=True)


class DatabaseSource:
    """The analytics source for a usage database alone (``--database-url`` / ``LLM_MANAGER_DATABASE_URL``)."""

    live = False

    def __init__(self, url: str | None = None, currency: str | None = None):
        url = url or os.environ.get("LLM_MANAGER_DATABASE_URL")
        if not url:
            raise ValueError("no database URL (pass --database-url or set LLM_MANAGER_DATABASE_URL)")
        self.url = url
        self.reader = TableReader(readonly_engine(url))
        self.currency = currency or os.environ.get("LLM_MANAGER_CURRENCY") or "USD"
        self.usage_origin = f"the usage database {_safe(url)} (read-only, no manager)"

    async def requests_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        return await asyncio.to_thread(self.reader.requests, since, until)

    async def events_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        return await asyncio.to_thread(self.reader.frame, "model_event", since, until)

    async def alerts_frame(self, since: float | None, until: float | None) -> pd.DataFrame:
        return await asyncio.to_thread(self.reader.alerts, since, until)

    async def budget(self) -> float | None:
        return monthly_budget(await asyncio.to_thread(self.reader.budgets))

    async def prices(self) -> dict[str, Any]:
        """No config here: the what-if table starts empty (type the prices to compare)."""
        return {}


def _safe(url: str) -> str:
    """The URL without its password (it is shown on the page)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
