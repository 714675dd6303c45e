"""Usage persistence: the engine, a batched background writer and frame queries.

The proxy calls :meth:`UsageStore.record` on the IOLoop for every request, so recording only appends to a deque; a
daemon thread writes the queue in one transaction every ``flush_interval`` seconds. A crash loses at most the rows
of the last interval. Queries run on the caller's thread (put them off the IOLoop) with a session per call.

The SQLModel tables and their migrations are in ``schema.py`` (re-exported here).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from llm_manager.accounting.record import UsageRecord
from llm_manager.accounting.schema import (
    EVENT_KINDS,
    MIGRATIONS,
    ApiKey,
    Budget,
    DeviceSample,
    ModelEvent,
    RequestLog,
    StoredResponse,
    migrate,
    schema_version,
)

__all__ = ["EVENT_KINDS", "MIGRATIONS", "ApiKey", "Budget", "DeviceSample", "ModelEvent", "RequestLog", "StoredResponse",
           "UsageStore",
           "make_engine", "migrate", "schema_version"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- engine


def make_engine(url: str) -> Engine:
    """One engine per store. SQLite gets WAL, synchronous=NORMAL and a busy timeout on every connection."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


_DTYPES = {float: "float64", int: "int64", bool: "bool"}  # nullable floats become NaN; nullable ints: none
_CATEGORICAL = ("model", "alias", "key_id", "endpoint")


def _request_row(r: UsageRecord) -> dict[str, Any]:
    return {
        "ts": r.ts, "model": r.model, "alias": r.alias, "key_id": r.key_id, "client_ip": r.client_ip,
        "endpoint": r.endpoint, "status": r.status, "stream": r.stream, "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens, "total_tokens": r.prompt_tokens + r.completion_tokens,
        "estimated": r.estimated, "queue_ms": r.queue_ms, "start_ms": r.start_ms, "ttft_ms": r.ttft_ms,
        "total_ms": r.total_ms, "cost": r.cost, "error": r.error, "cached": r.cached, "batch_id": r.batch_id,
        "instance": r.instance, "entry_node": r.entry_node,
    }


def _drain(q: deque[Any]) -> list[Any]:
    out = []
    try:
        for _ in range(len(q)):
            out.append(q.popleft())
    except IndexError:
        pass
    return out


class UsageStore:
    """Usage rows, model events, device samples, API keys and budgets in one SQL database."""

    def __init__(self, url: str | None, data_dir: Path, flush_interval: float = 1.0, max_queue: int = 500_000,
                 node: str = ""):
        data_dir = Path(data_dir)
        self.node = node  # this manager's node name: its rows say so (several managers may share the database)
        if url is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{data_dir / 'usage.db'}"
        self.url = url
        self.flush_interval = flush_interval
        self.engine = make_engine(url)
        self.version = migrate(self.engine)
        self.dropped = 0  # rows discarded because the queue was full (database down for long)
        # The outcome of the last flush that had rows to write, for /api/health (written by the writer thread).
        self.last_error: str | None = None
        self.failed_flushes = 0  # consecutive failed flushes
        self.last_success_at: float | None = None
        self.last_failure_at: float | None = None
        self._requests: deque[UsageRecord] = deque(maxlen=max_queue)
        self._events: deque[dict[str, Any]] = deque(maxlen=max_queue)
        self._devices: deque[dict[str, Any]] = deque(maxlen=max_queue)
        self._inflight: list[UsageRecord] = []
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ hot path (IOLoop)

    def _push(self, q: deque[Any], item: Any) -> None:
        if len(q) == q.maxlen:
            self.dropped += 1
        q.append(item)

    def record(self, rec: UsageRecord) -> None:
        """Queue one request row: O(1), no I/O. Do not mutate ``rec`` afterwards."""
        self._push(self._requests, rec)

    def record_event(self, model: str, kind: str, detail: str = "", ts: float | None = None,
                     price_per_hour: float | None = None, holdings: dict[str, float] | None = None) -> None:
        """Queue one model lifecycle event; an unknown ``kind`` is a programming error and raises ValueError.

        A start event carries its hourly price and ``holdings`` ({device: MB}) as in effect then."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown model event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
        self._push(self._events, {"ts": time.time() if ts is None else ts, "model": model, "kind": kind,
                                  "detail": detail, "price_per_hour": price_per_hour,
                                  "holdings": json.dumps(holdings) if holdings is not None else ""})

    def record_device_sample(self, device: str, used_memory_mb: float, total_memory_mb: float,
                             usage_percentage: float, temperature_celsius: float | None = None,
                             ts: float | None = None, power_watts: float | None = None,
                             device_type: str = "") -> None:
        """Queue one (already downsampled) device sample."""
        self._push(self._devices, {
            "ts": time.time() if ts is None else ts, "device": device, "used_memory_mb": used_memory_mb,
            "total_memory_mb": total_memory_mb, "usage_percentage": usage_percentage,
            "temperature_celsius": temperature_celsius, "power_watts": power_watts, "device_type": device_type})

    @property
    def pending(self) -> int:
        return len(self._requests) + len(self._events) + len(self._devices)

    # ------------------------------------------------------------ writer

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # keep the writer alive; rows stay queued for the next try
                if self.failed_flushes == 1:  # once per outage; /api/health reports it while it lasts
                    log.exception("usage flush failed; retrying every %g s", self.flush_interval)

    def flush(self) -> int:
        """Write everything queued now in one transaction; returns rows written. Safe from any thread."""
        with self._flush_lock:
            reqs, events, devices = _drain(self._requests), _drain(self._events), _drain(self._devices)
            if not (reqs or events or devices):
                return 0
            self._inflight = reqs
            try:
                with self.engine.begin() as conn:
                    node = {"node": self.node}
                    if reqs:
                        conn.execute(insert(RequestLog.__table__), [_request_row(r) | node for r in reqs])  # type: ignore[attr-defined]
                    if events:
                        conn.execute(insert(ModelEvent.__table__), [e | node for e in events])  # type: ignore[attr-defined]
                    if devices:
                        conn.execute(insert(DeviceSample.__table__), [d | node for d in devices])  # type: ignore[attr-defined]
            except Exception as exc:
                self._requests.extendleft(reversed(reqs))
                self._events.extendleft(reversed(events))
                self._devices.extendleft(reversed(devices))
                self._failed(exc)
                raise
            finally:
                self._inflight = []
            if self.failed_flushes:
                log.warning("usage flush works again after %d failed attempts", self.failed_flushes)
            self.last_error, self.failed_flushes, self.last_success_at = None, 0, time.time()
            return len(reqs) + len(events) + len(devices)

    def _failed(self, exc: Exception) -> None:
        """Remember why the flush failed: the driver's message, without the SQL and its row parameters."""
        orig = getattr(exc, "orig", None) or exc
        self.last_error = f"{type(orig).__name__}: {orig}"[:300]
        self.failed_flushes += 1
        self.last_failure_at = time.time()

    def flush_status(self) -> dict[str, Any]:
        """Whether the last flush that had rows to write failed, and why (rows stay queued until one succeeds)."""
        return {"failing": self.last_error is not None, "last_error": self.last_error,
                "failed_flushes": self.failed_flushes, "last_success_at": self.last_success_at,
                "last_failure_at": self.last_failure_at, "pending": self.pending, "dropped": self.dropped}

    def close(self) -> None:
        """Stop the writer, write what is queued and release the engine."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=max(5.0, 2 * self.flush_interval))
            self.flush()
            self.engine.dispose()

    def __enter__(self) -> UsageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ queries (off the IOLoop)

    def _frame(self, table: Any, since: float | None, until: float | None, **equal: Any) -> pd.DataFrame:
        """Rows of ``table`` in ``[since, until)`` (and ``column == value`` for each non-None ``equal``), by ts."""
        filters = [table.c.ts >= since] if since is not None else []
        if until is not None:
            filters.append(table.c.ts < until)
        filters += [table.c[col] == value for col, value in equal.items() if value is not None and col != "nodes"]
        if equal.get("nodes") is not None:
            filters.append(table.c.node.in_(equal["nodes"]))
        stmt = select(table).where(*filters).order_by(table.c.ts, table.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        columns = [c.name for c in table.columns]
        df = pd.DataFrame.from_records(rows, columns=columns)
        df = df.astype({c.name: _DTYPES.get(c.type.python_type, "object") for c in table.columns})
        df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
        return df

    def requests_frame(self, since: float | None = None, until: float | None = None, model: str | None = None,
                       key_id: str | None = None) -> pd.DataFrame:
        """Request rows in ``[since, until)`` ordered by ts, plus ``time`` (UTC datetime).

        model/alias/key_id/endpoint are categoricals: analytics groups by their codes without hashing strings."""
        df = self._frame(RequestLog.__table__, since, until, model=model, key_id=key_id)  # type: ignore[attr-defined]
        for col in _CATEGORICAL:
            df[col] = df[col].astype("category")
        return df

    def events_frame(self, since: float | None = None, until: float | None = None,
                     model: str | None = None, nodes: list[str] | None = None) -> pd.DataFrame:
        """Model events; ``nodes``: only those of these nodes ("" is a row written before v10 named its node)."""
        return self._frame(ModelEvent.__table__, since, until, model=model, nodes=nodes)  # type: ignore[attr-defined]

    def device_frame(self, since: float | None = None, until: float | None = None,
                     device: str | None = None) -> pd.DataFrame:
        return self._frame(DeviceSample.__table__, since, until, device=device)  # type: ignore[attr-defined]

    def last_sign_of_life(self, before: float | None = None, nodes: list[str] | None = None) -> float | None:
        """The newest timestamp of any request, event or device sample (before ``before``; of ``nodes`` only, when
        given): when a manager writing here was last seen alive. Rows still queued count too."""
        newest: list[float] = [r.ts for r in list(self._requests)] + [e["ts"] for e in list(self._events)]
        newest += [d["ts"] for d in list(self._devices)]
        with self.engine.connect() as conn:
            for table in (RequestLog.__table__, ModelEvent.__table__, DeviceSample.__table__):  # type: ignore[attr-defined]
                stmt = select(func.max(table.c.ts))
                if nodes is not None:
                    stmt = stmt.where(table.c.node.in_(nodes))
                if before is not None:
                    stmt = stmt.where(table.c.ts < before)
                value = conn.execute(stmt).scalar_one_or_none()
                if value is not None:
                    newest.append(float(value))
        newest = [t for t in newest if before is None or t < before]
        return max(newest) if newest else None

    def period_totals(self, key_id: str | None, since: float, model: str | None = None) -> tuple[int, float]:
        """(tokens, cost) since ``since`` for one key (None: all keys), optionally one model; one SQL SUM.

        Rows still queued in memory are included, so a budget is not overrun by the flush delay."""
        t = RequestLog.__table__  # type: ignore[attr-defined]
        stmt = select(func.coalesce(func.sum(t.c.total_tokens), 0), func.coalesce(func.sum(t.c.cost), 0.0))
        stmt = stmt.where(t.c.ts >= since)
        if key_id is not None:
            stmt = stmt.where(t.c.key_id == key_id)
        if model is not None:
            stmt = stmt.where(t.c.model == model)
        with self.engine.connect() as conn:
            tokens, cost = conn.execute(stmt).one()
        tokens, cost = int(tokens), float(cost)
        for r in list(self._requests) + list(self._inflight):
            if r.ts >= since and (key_id is None or r.key_id == key_id) and (model is None or r.model == model):
                tokens += r.prompt_tokens + r.completion_tokens
                cost += r.cost
        return tokens, cost

    # ------------------------------------------------------------ API keys and budgets

    def _add(self, row: Any) -> Any:
        with Session(self.engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
            return row

    def add_key(self, row: ApiKey) -> ApiKey:
        """Insert a key row (the caller hashes the secret); a duplicate hash raises IntegrityError."""
        return self._add(row)

    def list_keys(self, include_revoked: bool = True) -> list[ApiKey]:
        stmt = select(ApiKey).order_by(ApiKey.created_at)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.execute(stmt).scalars())

    def revoke_key(self, key_id: str, at: float | None = None) -> bool:
        """Mark a key revoked (kept for the usage history); False if unknown or already revoked."""
        t = ApiKey.__table__  # type: ignore[attr-defined]
        stmt = update(t).where(t.c.id == key_id, t.c.revoked_at.is_(None)).values(
            revoked_at=time.time() if at is None else at)
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def find_key_by_hash(self, key_hash: str) -> ApiKey | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.execute(select(ApiKey).where(ApiKey.key_hash == key_hash)).scalars().first()

    def add_budget(self, row: Budget) -> Budget:
        return self._add(row)

    def list_budgets(self) -> list[Budget]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.execute(select(Budget).order_by(Budget.id)).scalars())

    def delete_budget(self, budget_id: int) -> bool:
        t = Budget.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.id == budget_id)).rowcount == 1

    # ------------------------------------------------------------ stored Responses API answers

    def save_response(self, rid: str, model: str, items: list[Any], response: dict[str, Any],
                      retention_days: float = 30.0) -> None:
        """Keep one answer (its whole input conversation and the response object); older ones past retention go.

        Synchronous on purpose: a client may name it in ``previous_response_id`` the moment it has the answer."""
        t = StoredResponse.__table__  # type: ignore[attr-defined]
        now = time.time()
        row = {"id": rid, "created_at": now, "model": model, "input": json.dumps(items),
               "response": json.dumps(response)}
        with self.engine.begin() as conn:
            conn.execute(t.delete().where((t.c.created_at < now - retention_days * 86400) | (t.c.id == rid)))
            conn.execute(insert(t), [row])

    def load_response(self, rid: str) -> tuple[str, list[Any], dict[str, Any]] | None:
        """(model, input items, response object) of a stored answer, or None."""
        t = StoredResponse.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.model, t.c.input, t.c.response).where(t.c.id == rid)).first()
        return None if row is None else (row[0], json.loads(row[1]), json.loads(row[2]))

    def delete_response(self, rid: str) -> bool:
        t = StoredResponse.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(t.c.id == rid)).rowcount == 1
