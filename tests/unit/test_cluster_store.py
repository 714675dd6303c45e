"""A usage database several nodes share (issue 17): rows name their node (schema v10, migrated from v9 with the rows
kept), and a node starting after a crash closes only its own open loaded intervals, never another live node's."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import inspect, text

from llm_manager.accounting.layer import close_dangling
from llm_manager.accounting.record import UsageRecord
from llm_manager.accounting.store import UsageStore, make_engine, migrate

NEVER = 3600.0


def test_v9_rows_survive_v10_and_new_rows_name_their_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'usage.db'}"
    engine = make_engine(url)
    assert migrate(engine, target=9) == 9
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO request_log (ts, model, alias, endpoint, client_ip, status, stream, prompt_tokens,"
                          " completion_tokens, total_tokens, estimated, queue_ms, start_ms, total_ms, cost, cached) "
                          "VALUES (5.0, 'old', '', 'chat', '', 200, false, 3, 4, 7, false, 0, 0, 9, 0.5, false)"))
    engine.dispose()
    with UsageStore(url, tmp_path, flush_interval=NEVER, node="beta") as store:
        assert "budget_spend" in inspect(store.engine).get_table_names()
        store.record(UsageRecord(model="new", endpoint="chat", status=200, prompt_tokens=1, entry_node="alpha"))
        store.flush()
        df = store.requests_frame().sort_values("ts")
        assert df["node"].tolist() == ["", "beta"] and df["entry_node"].tolist() == ["", "alpha"]


def test_a_node_closes_only_its_own_dangling_intervals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    now = time.time()
    for node in ("alpha", "beta"):  # each node loaded a model and died without a stop event
        with UsageStore(url, tmp_path, flush_interval=NEVER, node=node) as store:
            store.record_event(f"chat-{node}", "start", "cold start", ts=now - 60)
            store.record_event(f"chat-{node}", "ready", "", ts=now - 59)
    with UsageStore(url, tmp_path, flush_interval=NEVER, node="alpha") as store:
        close_dangling(store)
        events = store.events_frame()
    crashes = events[events["kind"] == "crash"]
    assert crashes["model"].tolist() == ["chat-alpha"] and crashes["node"].tolist() == ["alpha"]
