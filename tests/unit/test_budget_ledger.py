"""The cluster-wide budget rows (accounting/ledger.py) with two ledgers on one database, as two nodes would have:
spend adds up atomically from both, each threshold is claimed by exactly one of them, a new period starts a new row."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from llm_manager.accounting.ledger import BudgetLedger, budget_id
from llm_manager.accounting.security import Budget, period_bounds
from llm_manager.accounting.store import make_engine, migrate


def _budget(limit: float = 100.0) -> Budget:
    b = Budget("shared", "global", "day", limit, "tokens")
    b.start, b.end = period_bounds("day", time.time())
    return b


def _node(url: str, published: list[dict[str, Any]]) -> tuple[BudgetLedger, Budget]:
    engine = make_engine(url)
    migrate(engine)
    b = _budget()
    ledger = BudgetLedger(engine, lambda: [b], published.append)
    ledger.seed([b])
    return ledger, b


def test_two_nodes_add_up_and_announce_each_threshold_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    published: list[dict[str, Any]] = []
    (one, b1), (two, b2) = _node(url, published), _node(url, published)

    def spend(ledger: BudgetLedger, b: Budget) -> None:
        for _ in range(30):
            b.used += 2
            ledger.add(b, 2)  # outside an event loop: kept pending
            deltas, ledger.pending = ledger.pending, {}
            ledger.apply(deltas, [b], claim=False)

    threads = [threading.Thread(target=spend, args=node) for node in ((one, b1), (two, b2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows, _ = one.apply({}, [b1], claim=False)
    assert rows[(budget_id(b1), b1.start)] == 120.0  # 2 x 30 x 2: nothing lost between the nodes

    async def sync_both() -> None:
        await asyncio.gather(one.sync(), two.sync())
        await asyncio.gather(one.sync(), two.sync())

    asyncio.run(sync_both())
    assert b1.used == b2.used == 120.0
    percents = sorted(int(e["detail"].split(" at ")[1].split(" %")[0]) for e in published)
    assert percents == [50, 80, 100], published
    assert all(e["kind"] == "budget" and "'shared'" in e["detail"] for e in published)


def test_a_new_period_starts_its_own_row(tmp_path: Path) -> None:
    published: list[dict[str, Any]] = []
    ledger, b = _node(f"sqlite:///{tmp_path / 'p.db'}", published)
    ledger.apply({(budget_id(b), b.start): 70.0}, [b])
    b.start, b.end, b.used = b.end, b.end + 86400, 0.0
    rows, claimed = ledger.apply({(budget_id(b), b.start): 5.0}, [b])
    assert rows == {(budget_id(b), b.start): 5.0} and claimed == []
