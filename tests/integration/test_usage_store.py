"""UsageStore against SQLite (always) and a throwaway PostgreSQL server (when Debian's binaries are installed)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers import wait_until
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from llm_manager.accounting import analytics
from llm_manager.accounting.record import UsageRecord
from llm_manager.accounting.store import (
    MIGRATIONS,
    ApiKey,
    Budget,
    UsageStore,
    make_engine,
    migrate,
    schema_version,
)

ROOT = Path(__file__).resolve().parents[2]
NEVER = 3600.0  # a flush interval the tests never reach, so only explicit flushes write


def rec(i: int = 0, **kw: object) -> UsageRecord:
    base: dict[str, object] = {"model": "m", "endpoint": "chat/completions", "status": 200, "prompt_tokens": 10,
                               "completion_tokens": 5, "cost": 0.01, "total_ms": 100.0 + i, "ts": 1_000_000.0 + i}
    base.update(kw)
    return UsageRecord(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str | None:
    """The store URL: None (the default SQLite file under the data dir) or a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_database")


@pytest.fixture
def store(url: str | None, tmp_path: Path) -> Iterator[UsageStore]:
    s = UsageStore(url, tmp_path, flush_interval=NEVER)
    yield s
    s.close()


def count(s: UsageStore) -> int:
    with s.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM request_log")).scalar_one())


# ---------------------------------------------------------------- both backends


def test_record_is_queued_and_flush_writes_batch(store: UsageStore) -> None:
    for i in range(10):
        store.record(rec(i, key_id="k1" if i % 2 else None, ttft_ms=5.0 if i else None, stream=bool(i % 3)))
    assert count(store) == 0 and store.pending == 10  # record() never touches the database
    assert store.flush() == 10
    assert store.pending == 0 and store.flush() == 0
    df = store.requests_frame()
    assert len(df) == 10 and df["ts"].is_monotonic_increasing
    r = df.iloc[1]
    assert (r["model"], r["key_id"], r["status"], r["total_tokens"], r["ttft_ms"]) == ("m", "k1", 200, 15, 5.0)
    assert pd.isna(df.iloc[0]["ttft_ms"]) and pd.isna(df.iloc[0]["key_id"])
    assert df["stream"].dtype == bool and df["prompt_tokens"].dtype == "int64"
    assert df["time"].iloc[0] == pd.Timestamp(1_000_000, unit="s", tz="UTC")
    assert isinstance(df["model"].dtype, pd.CategoricalDtype)


def test_frames_filter(store: UsageStore) -> None:
    for i in range(6):
        store.record(rec(i, model="a" if i < 4 else "b", key_id=f"k{i % 2}"))
    store.record_event("a", "start", "profile 0", ts=1_000_000.0)
    store.record_event("a", "ready", ts=1_000_005.0)
    store.record_device_sample("gpu0", 1000.0, 8000.0, 12.5, 60.0, ts=1_000_001.0)
    store.record_device_sample("gpu1", 0.0, 8000.0, 0.0, None, ts=1_000_002.0)
    store.flush()
    assert store.requests_frame(since=1_000_002, until=1_000_005)["id"].tolist() == [3, 4, 5]
    assert len(store.requests_frame(model="a")) == 4
    assert store.requests_frame(model="a", key_id="k1")["ts"].tolist() == [1_000_001.0, 1_000_003.0]
    assert store.requests_frame(model="zzz").empty
    ev = store.events_frame(model="a")
    assert ev["kind"].tolist() == ["start", "ready"] and ev["detail"].tolist() == ["profile 0", ""]
    assert store.events_frame(since=1_000_001)["kind"].tolist() == ["ready"]
    dev = store.device_frame()
    assert dev["device"].tolist() == ["gpu0", "gpu1"] and pd.isna(dev["temperature_celsius"].iloc[1])
    assert store.device_frame(device="gpu0")["used_memory_mb"].tolist() == [1000.0]
    with pytest.raises(ValueError, match="unknown model event kind"):
        store.record_event("a", "exploded")


def test_empty_frames_have_columns(store: UsageStore) -> None:
    df = store.requests_frame()
    assert df.empty and {"ts", "time", "model", "total_tokens", "cost"} <= set(df.columns)
    assert analytics.summary(df, 1_000_000.0)["total_requests"] == 0
    assert store.events_frame().empty and store.device_frame().empty


def test_background_thread_flushes(url: str | None, tmp_path: Path) -> None:
    with UsageStore(url, tmp_path, flush_interval=0.05) as s:
        for i in range(5):
            s.record(rec(i))
        assert wait_until(lambda: count(s) >= 5), "the writer thread never flushed"
        assert count(s) == 5 and s.pending == 0


def test_close_flushes_and_data_persists(url: str | None, tmp_path: Path) -> None:
    s = UsageStore(url, tmp_path, flush_interval=NEVER)
    for i in range(7):
        s.record(rec(i))
    s.record_event("m", "stop")
    s.close()
    s.close()  # idempotent
    with UsageStore(url, tmp_path, flush_interval=NEVER) as again:
        assert len(again.requests_frame()) == 7 and again.events_frame()["kind"].tolist() == ["stop"]


def test_period_totals_counts_queued_rows(store: UsageStore) -> None:
    store.record(rec(0, key_id="a", prompt_tokens=100, completion_tokens=50, cost=1.5))
    store.record(rec(10, key_id="b", prompt_tokens=10, completion_tokens=0, cost=0.25))
    store.record(rec(20, key_id="a", model="x", prompt_tokens=1, completion_tokens=1, cost=0.5))
    expected = {("a", 0.0): (152, 2.0), (None, 0.0): (162, 2.25), ("a", 1_000_001.0): (2, 0.5),
                ("zz", 0.0): (0, 0.0)}
    for (key, since), want in expected.items():
        assert store.period_totals(key, since) == pytest.approx(want)
    store.flush()
    for (key, since), want in expected.items():
        tokens, cost = store.period_totals(key, since)
        assert isinstance(tokens, int) and isinstance(cost, float)
        assert (tokens, cost) == pytest.approx(want)
    assert store.period_totals(None, 0.0, model="x") == pytest.approx((2, 0.5))


def test_concurrent_record_and_flush_loses_nothing(store: UsageStore) -> None:
    def producer(offset: int) -> None:
        for i in range(500):
            store.record(rec(offset + i))

    def flusher() -> None:
        for _ in range(20):
            store.flush()

    threads = [threading.Thread(target=producer, args=(k * 1000,)) for k in range(4)]
    threads += [threading.Thread(target=flusher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.flush()
    df = store.requests_frame()
    assert len(df) == 2000 and df["ts"].is_unique


def test_failed_flush_keeps_rows_queued(store: UsageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.record(rec(1))
    store.record(rec(2))
    engine = store.engine

    class Broken:
        def begin(self) -> object:
            raise RuntimeError("database is down")

    monkeypatch.setattr(store, "engine", Broken())
    with pytest.raises(RuntimeError):
        store.flush()
    assert store.pending == 2
    monkeypatch.setattr(store, "engine", engine)
    assert store.flush() == 2
    assert store.requests_frame()["ts"].tolist() == [1_000_001.0, 1_000_002.0]


def test_api_keys(store: UsageStore) -> None:
    store.add_key(ApiKey(id="k1", name="alice", key_hash="h1", prefix="sk-a", models='["m"]', created_at=1.0))
    store.add_key(ApiKey(id="k2", name="ops", key_hash="h2", prefix="sk-b", admin=True, created_at=2.0))
    assert [k.id for k in store.list_keys()] == ["k1", "k2"]
    found = store.find_key_by_hash("h2")
    assert found is not None and found.admin and found.name == "ops"
    assert store.find_key_by_hash("nope") is None
    assert store.revoke_key("k1", at=5.0) is True
    assert store.revoke_key("k1") is False and store.revoke_key("missing") is False
    assert [k.id for k in store.list_keys(include_revoked=False)] == ["k2"]
    revoked = store.find_key_by_hash("h1")
    assert revoked is not None and revoked.revoked_at == 5.0
    with pytest.raises(IntegrityError):
        store.add_key(ApiKey(id="k3", key_hash="h1"))


def test_budgets(store: UsageStore) -> None:
    g = store.add_budget(Budget(scope="global", period="month", limit_value=100.0, unit="cost"))
    store.add_budget(Budget(scope="key", key_id="k1", period="day", limit_value=1e6, unit="tokens"))
    assert [(b.scope, b.key_id, b.unit) for b in store.list_budgets()] == [("global", None, "cost"),
                                                                         ("key", "k1", "tokens")]
    assert g.id is not None and store.delete_budget(g.id) and not store.delete_budget(g.id)
    assert len(store.list_budgets()) == 1


def test_migration_v1_to_v2_keeps_rows(url: str | None, tmp_path: Path) -> None:
    engine = make_engine(url or f"sqlite:///{tmp_path / 'usage.db'}")
    assert migrate(engine, target=1) == 1 and schema_version(engine) == 1
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO request_log (ts, model, alias, client_ip, endpoint, status, stream, "
                          "prompt_tokens, completion_tokens, total_tokens, estimated, queue_ms, start_ms, total_ms, "
                          "cost) VALUES (5.0, 'old', '', '', 'chat', 200, false, 3, 4, 7, false, 0, 0, 9, 0.5)"))
        names = {ix["name"] for ix in inspect(conn).get_indexes("request_log")}
    assert "ix_request_log_key_ts" not in names
    engine.dispose()
    with UsageStore(url, tmp_path, flush_interval=NEVER) as s:
        assert s.version == len(MIGRATIONS) == 10 and schema_version(s.engine) == 10
        assert {"batch", "batch_line", "batch_file"} <= set(inspect(s.engine).get_table_names())  # v5
        df = s.requests_frame()
        assert df["model"].tolist() == ["old"] and df["total_tokens"].tolist() == [7]
        with s.engine.connect() as conn:
            assert "ix_request_log_key_ts" in {ix["name"] for ix in inspect(conn).get_indexes("request_log")}
        s.record(rec(1))
    with UsageStore(url, tmp_path, flush_interval=NEVER) as s:  # migrating again is a no-op
        assert len(s.requests_frame()) == 2


def test_migration_v7_to_v8_adds_power_and_start_terms(url: str | None, tmp_path: Path) -> None:
    engine = make_engine(url or f"sqlite:///{tmp_path / 'usage.db'}")
    assert migrate(engine, target=7) == 7
    with engine.begin() as conn:  # rows as v7 wrote them, in tables without the v8 columns
        for table, column in (("device_sample", "power_watts"), ("device_sample", "device_type"),
                              ("model_event", "price_per_hour"), ("model_event", "holdings")):
            if column in {c["name"] for c in inspect(conn).get_columns(table)}:  # fresh v1 tables have them
                conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("INSERT INTO device_sample (ts, device, used_memory_mb, total_memory_mb, usage_percentage) "
                          "VALUES (1.0, 'gpu0', 10, 100, 10)"))
        conn.execute(text("INSERT INTO model_event (ts, model, kind, detail) VALUES (1.0, 'm', 'start', "
                          "'profile gpu')"))
    engine.dispose()
    with UsageStore(url, tmp_path, flush_interval=NEVER) as s:
        assert s.version == len(MIGRATIONS)
        s.record_device_sample("gpu0", 20, 100, 20, None, 2.0, power_watts=75.5, device_type="GPU")
        s.record_event("m", "start", "profile gpu", 2.0, price_per_hour=1.5, holdings={"gpu0": 20})
        s.flush()
        d, e = s.device_frame(), s.events_frame()
        assert d["power_watts"].tolist()[1] == 75.5 and pd.isna(d["power_watts"].tolist()[0])
        assert d["device_type"].tolist() == ["", "GPU"]
        assert e["holdings"].tolist() == ["", '{"gpu0": 20}'] and e["price_per_hour"].tolist()[1] == 1.5
        assert s.last_sign_of_life() == 2.0 and s.last_sign_of_life(before=2.0) == 1.0


def test_newer_schema_is_refused(url: str | None, tmp_path: Path) -> None:
    UsageStore(url, tmp_path, flush_interval=NEVER).close()
    engine = make_engine(url or f"sqlite:///{tmp_path / 'usage.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99 WHERE id = 1"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="newer"):
        UsageStore(url, tmp_path, flush_interval=NEVER)


# ---------------------------------------------------------------- SQLite only


def test_sqlite_wal_and_pragmas_on_every_connection(tmp_path: Path) -> None:
    with UsageStore(None, tmp_path, flush_interval=NEVER) as s:
        assert s.url == f"sqlite:///{tmp_path / 'usage.db'}"
        conns = [s.engine.connect() for _ in range(3)]  # several pooled connections, each configured
        try:
            for conn in conns:
                assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
                assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL
                assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 30000
        finally:
            for conn in conns:
                conn.close()
    assert sqlite3.connect(tmp_path / "usage.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_in_memory_url_works(tmp_path: Path) -> None:
    with UsageStore("sqlite://", tmp_path, flush_interval=NEVER) as s:
        s.record(rec())
        s.flush()
        assert len(s.requests_frame()) == 1


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from llm_manager.accounting.record import UsageRecord
    from llm_manager.accounting.store import UsageStore

    store = UsageStore(None, Path(sys.argv[1]), flush_interval=0.2)
    i, last = 0, 0.0
    while True:
        store.record(UsageRecord(model="m", endpoint="chat/completions", status=200, prompt_tokens=1))
        i += 1
        now = time.time()
        if now - last >= 0.01:
            print(f"{now:.6f} {i}", flush=True)
            last = now
        time.sleep(0.0005)  # the child's pace: about 2,000 records a second, not a wait for anything
""")


def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data")], stdout=subprocess.PIPE,
                             text=True, env=env)
    printed: list[tuple[float, int]] = []

    def reader() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            t, n = line.split()
            printed.append((float(t), int(n)))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    # let the child record for 2 s (the behaviour under test), measured by what it printed
    assert wait_until(lambda: printed and printed[-1][0] - printed[0][0] >= 2.0, timeout=30, interval=0.01)
    os.kill(child.pid, signal.SIGKILL)
    killed_at = time.time()
    child.wait(10)
    thread.join(5)
    assert child.returncode == -signal.SIGKILL and printed
    db = sqlite3.connect(tmp_path / "data" / "usage.db")
    written = db.execute("SELECT COUNT(*) FROM request_log").fetchone()[0]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    safe = max((n for t, n in printed if t <= killed_at - 0.5), default=0)  # recorded more than 0.5 s before
    assert safe > 100
    assert safe <= written <= printed[-1][1] + 100, (safe, written, printed[-1])


def _race_migrations(url: str, migrate_fn, engines: int = 4) -> list[BaseException]:
    """``engines`` managers' stores migrating one empty database at the same instant; the errors they hit."""
    from sqlalchemy import create_engine

    barrier, errors = threading.Barrier(engines), []
    made = [create_engine(url) for _ in range(engines)]

    def one(engine) -> None:
        barrier.wait()
        try:
            migrate_fn(engine)
        except BaseException as exc:  # noqa: BLE001 - what the race raises is the finding
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(e,)) for e in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in made:
        e.dispose()
    return errors


def test_managers_starting_together_on_an_empty_postgres_all_migrate(postgres_url):
    """Concurrent migrations of one empty database: under the advisory lock every one succeeds, every round."""
    import psycopg

    from llm_manager.accounting.schema import MIGRATIONS, migrate, schema_version

    conninfo = postgres_url.replace("postgresql+psycopg", "postgresql")
    for round_ in range(6):
        name = f"race_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
        assert _race_migrations(url, migrate) == [], f"round {round_}"
        from sqlalchemy import create_engine

        engine = create_engine(url)
        assert schema_version(engine) == len(MIGRATIONS)
        engine.dispose()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
