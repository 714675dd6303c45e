"""Cluster-wide budgets: every node sharing one PostgreSQL counts its spend into the same rows.

A budget's spend in a period is one ``budget_spend`` row; a node adds what it served with one atomic upsert
(``INSERT ... ON CONFLICT DO UPDATE SET spent = budget_spend.spent + excluded.spent``), so concurrent nodes never
lose each other's spend, and reads the rows back before it admits a request (``fresh``): the nodes together overrun
a budget by at most what was in flight when it ran out. The 50/80/100 % announcements are claimed in the row
(``UPDATE ... SET warned = p WHERE warned < p AND spent >= limit * p``): one node wins each, so each fires once for
the cluster. Rate limits are not here: they stay per node.

The writes run in a worker thread; ``add`` is O(1) on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from .schema import BudgetSpend

log = logging.getLogger(__name__)
THRESHOLDS_PCT = (50, 80, 100)  # the announcements, in percent of a budget's limit
SYNC_EVERY = 1.0  # seconds between reads of the cluster's spend when no request asks for one


def budget_id(b: Any) -> str:
    """A budget's identity in the shared rows: its name, unit and scope (a changed unit starts a new count)."""
    return f"{b.name}|{b.unit}|{b.scope}|{b.key or ''}"


class BudgetLedger:
    """This node's side of the shared budget rows (see the module docstring)."""

    def __init__(self, engine: Engine, budgets: Callable[[], list[Any]], publish: Callable[[dict[str, Any]], None]):
        self.engine = engine
        self.budgets = budgets  # the budgets in force now (a config reload replaces them)
        self.publish = publish  # an announcement, as the bus's "event" topic takes it
        self.pending: dict[tuple[str, float], float] = {}  # spend served here, not yet written
        self.synced_at = 0.0  # monotonic time of the last successful sync
        self._sync: asyncio.Future[None] | None = None
        self._table = BudgetSpend.__table__  # type: ignore[attr-defined]

    # ------------------------------------------------------------ event loop

    def add(self, b: Any, amount: float) -> None:
        """Count ``amount`` of ``b`` (already added to ``b.used``); written at once, in the background."""
        if amount:
            key = (budget_id(b), b.start)
            self.pending[key] = self.pending.get(key, 0.0) + amount
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # outside the event loop (a test or a script): the next sync writes it
                return
            self.sync()

    def sync(self) -> asyncio.Future[None]:
        """Write what is pending, read the cluster's spend and claim the thresholds crossed; one at a time (a
        caller during a sync gets that sync, and one more follows it when spend was added meanwhile)."""
        if self._sync is None or self._sync.done():
            self._sync = asyncio.ensure_future(self._run_sync())
        return self._sync

    async def fresh(self) -> None:
        """The cluster's spend as of now (before a request is admitted); a database that is away is not fatal:
        the counters keep what they had."""
        try:
            await asyncio.shield(self.sync())  # a caller that goes away must not cancel the others' sync
        except Exception as exc:  # pragma: no cover - logged in _run_sync
            log.debug("budget sync failed: %s", exc)

    async def run(self, every: float = SYNC_EVERY) -> None:
        """Read the cluster's spend every ``every`` seconds until cancelled (``Service`` owns it)."""
        while True:
            await asyncio.sleep(every)
            await self.fresh()

    async def _run_sync(self) -> None:
        while True:
            deltas, self.pending = self.pending, {}
            budgets = [b for b in self.budgets() if b.unit != "gpu_hours" and b.end]
            try:
                rows, claimed = await asyncio.get_running_loop().run_in_executor(None, self.apply, deltas, budgets)
            except Exception as exc:
                for key, x in deltas.items():  # kept for the next try: nothing served is lost
                    self.pending[key] = self.pending.get(key, 0.0) + x
                log.warning("writing budget spend to the database failed: %s", exc)
                return
            self.synced_at = time.monotonic()
            for b in budgets:
                key = (budget_id(b), b.start)
                if key in rows:
                    b.used = rows[key] + self.pending.get(key, 0.0)
            for b, pct, spent in claimed:
                self.publish({"kind": "budget", "model": "", "ts": time.time(),
                              "detail": f"budget {b.name!r} at {pct} % ({spent:g} of {b.limit:g})"})
            if not self.pending:
                return

    # ------------------------------------------------------------ blocking (worker thread)

    def _upsert(self, values: dict[str, Any]) -> Any:
        t = self._table
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t).values(**values)
        return stmt.on_conflict_do_update(index_elements=[t.c.budget, t.c.period_start],
                                          set_={"spent": t.c.spent + stmt.excluded.spent})

    def seed(self, budgets: list[Any]) -> None:
        """At start and after a reload: a budget with no row for its period yet gets one from what the request log
        holds (``b.used``, as ``init_budgets`` summed it; two nodes at once: the first insert wins); then every
        budget's counter is the row's."""
        budgets = [b for b in budgets if b.unit != "gpu_hours" and b.end]
        if not budgets:
            return
        t = self._table
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as conn:
            for b in budgets:
                conn.execute(dialect.insert(t).values(budget=budget_id(b), period_start=b.start, spent=b.used,
                                                      warned=0).on_conflict_do_nothing())
        rows, _ = self.apply({}, budgets, claim=False)
        for b in budgets:
            b.used = rows.get((budget_id(b), b.start), b.used)

    def apply(self, deltas: dict[tuple[str, float], float], budgets: list[Any],
              claim: bool = True) -> tuple[dict[tuple[str, float], float], list[tuple[Any, int, float]]]:
        """Add ``deltas`` (one atomic upsert each), read the spend of ``budgets`` and claim each threshold a budget
        crossed that no node announced yet. Returns {(budget id, period start): spent} and the claims won here."""
        t = self._table
        if deltas:
            with self.engine.begin() as conn:
                for (bid, start), x in deltas.items():
                    conn.execute(self._upsert({"budget": bid, "period_start": start, "spent": x, "warned": 0}))
        keys = [(budget_id(b), b.start) for b in budgets]
        if not keys:
            return {}, []
        with self.engine.connect() as conn:
            found = conn.execute(select(t.c.budget, t.c.period_start, t.c.spent, t.c.warned).where(
                tuple_(t.c.budget, t.c.period_start).in_(keys))).all()
        rows = {(r[0], r[1]): (float(r[2]), int(r[3])) for r in found}
        claimed: list[tuple[Any, int, float]] = []
        for b in budgets if claim else ():
            key = (budget_id(b), b.start)
            spent, warned = rows.get(key, (0.0, 0))
            for pct in THRESHOLDS_PCT:
                if warned < pct and spent >= b.limit * pct / 100:
                    with self.engine.begin() as conn:
                        won = conn.execute(update(t).where(
                            t.c.budget == key[0], t.c.period_start == key[1], t.c.warned < pct,
                            t.c.spent >= b.limit * pct / 100).values(warned=pct)).rowcount == 1
                    if won:
                        claimed.append((b, pct, spent))
        return {k: v[0] for k, v in rows.items()}, claimed
