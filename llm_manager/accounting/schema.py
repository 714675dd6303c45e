"""The usage database's tables and their versioned migrations.

Schema changes are migrations appended to :data:`MIGRATIONS`, never edits of shipped ones and never drops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, false, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

log = logging.getLogger("llm_manager.accounting.store")  # the store's log: migrations run when it opens

EVENT_KINDS = ("start", "ready", "stop", "evict", "crash", "fail", "idle_stop", "sleep", "wake", "cold-start", "scale-up",
               "scale-down", "scale-blocked", "upstream-down", "upstream-up", "swap-wait", "drain",
               "reorder", "footprint")


class RequestLog(SQLModel, table=True):
    __tablename__ = "request_log"
    id: int | None = Field(default=None, primary_key=True)
    ts: float = Field(index=True)
    model: str = Field(index=True)
    alias: str = ""
    key_id: str | None = Field(default=None, index=True)
    client_ip: str = ""
    endpoint: str = ""
    status: int = 0
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False
    queue_ms: float = 0.0
    start_ms: float = 0.0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    cost: float = 0.0
    error: str | None = None
    cached: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    batch_id: str | None = Field(default=None, index=True)
    instance: str = Field(default="", sa_column_kwargs={"server_default": ""})  # which instance or upstream
    # served it ("demo-chat@1", "api.example.com"); the default as v6 gave migrated tables, for fresh ones too
    node: str = Field(default="", sa_column_kwargs={"server_default": ""})  # v10: the node that served it
    entry_node: str = Field(default="", sa_column_kwargs={"server_default": ""})  # v10: where the client came in
    # (another node forwarded it); "": here


class ModelEvent(SQLModel, table=True):
    __tablename__ = "model_event"
    id: int | None = Field(default=None, primary_key=True)
    ts: float = Field(index=True)
    model: str = Field(index=True)
    kind: str  # one of EVENT_KINDS
    detail: str = ""
    # On start events (v8), what the start held, as billed then: the hourly price in effect (the profile's, else
    # the model's) and JSON {device name: MB} of the devices its profile holds. History never follows the config.
    price_per_hour: float | None = None
    holdings: str = Field(default="", sa_column_kwargs={"server_default": ""})
    node: str = Field(default="", sa_column_kwargs={"server_default": ""})  # v10: the node whose model it was


class DeviceSample(SQLModel, table=True):
    __tablename__ = "device_sample"
    id: int | None = Field(default=None, primary_key=True)
    ts: float = Field(index=True)
    device: str
    used_memory_mb: float = 0.0
    total_memory_mb: float = 0.0
    usage_percentage: float = 0.0
    temperature_celsius: float | None = None
    power_watts: float | None = None  # v8: board power draw (NVML, simulated); None where not measured
    device_type: str = Field(default="", sa_column_kwargs={"server_default": ""})  # v8: "GPU", "CPU", ...
    node: str = Field(default="", sa_column_kwargs={"server_default": ""})  # v10: the node whose device it is


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    id: str = Field(primary_key=True)
    name: str = ""
    key_hash: str = Field(index=True, unique=True)
    prefix: str = ""
    models: str = "[]"  # JSON list of model names the key may use; "[]" or "*" means all
    created_at: float = Field(default_factory=time.time)
    revoked_at: float | None = None
    admin: bool = False


class Budget(SQLModel, table=True):
    __tablename__ = "budget"
    id: int | None = Field(default=None, primary_key=True)
    scope: str = "global"  # "global" | "key"
    key_id: str | None = None
    period: str = "month"  # "day" | "month"
    limit_value: float = 0.0
    unit: str = "cost"  # "cost" | "tokens"


class ClusterNode(SQLModel, table=True):
    """One manager sharing this database: its heartbeat (what it runs, its devices' free memory, its URL)."""

    __tablename__ = "cluster_node"
    name: str = Field(primary_key=True)  # program.node_name
    url: str = ""
    started_at: float = 0.0
    last_seen: float = Field(default=0.0, index=True)
    info: str = "{}"  # JSON: models (states, instances), devices (free memory), version


class BudgetSpend(SQLModel, table=True):
    """A budget's spend in one period, counted by every node sharing the database (``UPDATE ... SET spent = spent
    + x``), and the highest threshold already announced (claimed by one node only: the events fire once)."""

    __tablename__ = "budget_spend"
    budget: str = Field(primary_key=True)  # the budget's identity: name, unit, scope and key (ledger.budget_id)
    period_start: float = Field(primary_key=True)
    spent: float = 0.0
    warned: int = 0  # the highest threshold (percent) announced this period


class StoredResponse(SQLModel, table=True):
    """A /v1/responses answer kept for ``previous_response_id`` and GET /v1/responses/{id} (``store: true``)."""

    __tablename__ = "stored_response"
    id: str = Field(primary_key=True)  # "resp_..."
    created_at: float = Field(index=True)
    model: str = ""
    input: str = "[]"  # JSON list: the whole conversation's input items (previous responses' turns included)
    response: str = "{}"  # JSON: the response object as the client got it (output and usage)


class BatchFile(SQLModel, table=True):
    """A file uploaded to /v1/files (or a batch's output/error file); its bytes are in data_dir/files/<id>."""

    __tablename__ = "batch_file"
    id: str = Field(primary_key=True)  # "file-..."
    created_at: float = Field(index=True)
    filename: str = ""
    purpose: str = "batch"  # "batch" (uploaded) | "batch_output"
    bytes: int = 0
    key_id: str | None = Field(default=None, index=True)  # the owner; None on an open server


class Batch(SQLModel, table=True):
    """A Batches API job; its lines are ``BatchLine`` rows."""

    __tablename__ = "batch"
    id: str = Field(primary_key=True)  # "batch_..."
    created_at: float = Field(index=True)
    key_id: str | None = Field(default=None, index=True)  # the creating key: its lines run as it
    endpoint: str = ""  # "/v1/chat/completions"
    input_file_id: str = ""
    completion_window: str = "24h"
    expires_at: float = 0.0
    status: str = Field(default="validating", index=True)
    metadata_json: str = "null"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors_json: str = "null"  # a whole-batch failure (no valid line)
    times_json: str = "{}"  # in_progress_at, finalizing_at, completed_at, cancelling_at, ...
    total: int = 0


class BatchLine(SQLModel, table=True):
    """One line of a batch's input: ``pending`` until its result line is committed (``done``)."""

    __tablename__ = "batch_line"
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(index=True)
    idx: int = 0  # line number in the input file
    custom_id: str = ""
    url: str = ""
    request: str = "{}"  # the body, JSON
    state: str = "pending"  # "pending" | "done"
    ok: bool = False  # done with a 2xx answer (output file) rather than an error (error file)
    result: str | None = None  # the output/error file line, JSON


class AlertLog(SQLModel, table=True):
    """One alert as raised (budget threshold, crash loop, device offline, store failure) and how it was delivered."""

    __tablename__ = "alert_log"
    id: int | None = Field(default=None, primary_key=True)
    ts: float = Field(index=True)
    kind: str = Field(index=True)  # one of config.alerts.ALERT_KINDS
    subject: str = ""  # what it is about: a model, a device, a key or budget, the store
    message: str = ""
    payload: str = "{}"  # JSON: the body the webhooks were sent
    delivery: str = "{}"  # JSON: webhook URL -> "delivered" | "failed: <reason>" | "pending"


_TABLES = [RequestLog.__table__, ModelEvent.__table__, DeviceSample.__table__, ApiKey.__table__,
           Budget.__table__]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- migrations


def _m1_create_tables(conn: Connection) -> None:
    """v1: the tables as first released."""
    SQLModel.metadata.create_all(conn, tables=_TABLES)


def _m2_key_time_index(conn: Connection) -> None:
    """v2: composite (key_id, ts) index so budget sums per key stay fast. The pattern for later changes: add the
    field to the model *and* a migration that ALTERs the table, guarded so a fresh database (whose v1 ``create_all``
    already made it) is left alone, e.g. ``ALTER TABLE request_log ADD COLUMN instance VARCHAR DEFAULT ''``."""
    names = {ix["name"] for ix in inspect(conn).get_indexes("request_log")}
    if "ix_request_log_key_ts" not in names:
        conn.execute(text("CREATE INDEX ix_request_log_key_ts ON request_log (key_id, ts)"))


def _m3_stored_responses(conn: Connection) -> None:
    """v3: stored Responses API answers (a new table: nothing to alter)."""
    SQLModel.metadata.create_all(conn, tables=[StoredResponse.__table__])  # type: ignore[attr-defined]


def _m4_cached_and_batch(conn: Connection) -> None:
    """v4: request rows say whether the cache answered them and which batch they belong to."""
    columns = {c["name"] for c in inspect(conn).get_columns("request_log")}
    if "cached" not in columns:
        conn.execute(text("ALTER TABLE request_log ADD COLUMN cached BOOLEAN NOT NULL DEFAULT FALSE"))
    if "batch_id" not in columns:
        conn.execute(text("ALTER TABLE request_log ADD COLUMN batch_id VARCHAR"))
        conn.execute(text("CREATE INDEX ix_request_log_batch_id ON request_log (batch_id)"))


def _m5_batches(conn: Connection) -> None:
    """v5: the Batches API's files, batches and per-line progress (new tables)."""
    SQLModel.metadata.create_all(conn, tables=[BatchFile.__table__, Batch.__table__,  # type: ignore[attr-defined]
                                               BatchLine.__table__])  # type: ignore[attr-defined]


def _m6_instance(conn: Connection) -> None:
    """v6: request rows say which instance or remote upstream served them."""
    if "instance" not in {c["name"] for c in inspect(conn).get_columns("request_log")}:
        conn.execute(text("ALTER TABLE request_log ADD COLUMN instance VARCHAR NOT NULL DEFAULT ''"))


def _m7_alert_log(conn: Connection) -> None:
    """v7: alert history (a new table)."""
    SQLModel.metadata.create_all(conn, tables=[AlertLog.__table__])  # type: ignore[attr-defined]


def _m8_power_and_holdings(conn: Connection) -> None:
    """v8: device samples keep the power draw and device type; start events keep their hourly price and holdings
    (runtime cost, GPU time and energy are computed from these)."""
    samples = {c["name"] for c in inspect(conn).get_columns("device_sample")}
    if "power_watts" not in samples:
        conn.execute(text("ALTER TABLE device_sample ADD COLUMN power_watts FLOAT"))
    if "device_type" not in samples:
        conn.execute(text("ALTER TABLE device_sample ADD COLUMN device_type VARCHAR NOT NULL DEFAULT ''"))
    events = {c["name"] for c in inspect(conn).get_columns("model_event")}
    if "price_per_hour" not in events:
        conn.execute(text("ALTER TABLE model_event ADD COLUMN price_per_hour FLOAT"))
    if "holdings" not in events:
        conn.execute(text("ALTER TABLE model_event ADD COLUMN holdings VARCHAR NOT NULL DEFAULT ''"))


def _m9_cluster_nodes(conn: Connection) -> None:
    """v9: the node registry of managers sharing one database (a new table)."""
    SQLModel.metadata.create_all(conn, tables=[ClusterNode.__table__])  # type: ignore[attr-defined]


def _m10_nodes_and_spend(conn: Connection) -> None:
    """v10: request rows, events and device samples name their node (several managers on one database; requests
    forwarded by another node name it too), and budgets count their spend in ``budget_spend`` (cluster-wide)."""
    for table, columns in (("request_log", ("node", "entry_node")), ("model_event", ("node",)),
                           ("device_sample", ("node",))):
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        for column in columns:
            if column not in have:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR NOT NULL DEFAULT ''"))
    SQLModel.metadata.create_all(conn, tables=[BudgetSpend.__table__])  # type: ignore[attr-defined]


MIGRATIONS: list[Callable[[Connection], None]] = [_m1_create_tables, _m2_key_time_index, _m3_stored_responses,
                                                  _m4_cached_and_batch, _m5_batches, _m6_instance, _m7_alert_log,
                                                  _m8_power_and_holdings, _m9_cluster_nodes, _m10_nodes_and_spend]


def schema_version(engine: Engine) -> int:
    with engine.connect() as conn:
        if not inspect(conn).has_table("schema_version"):
            return 0
        return int(conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar_one_or_none() or 0)


MIGRATION_LOCK = 0x6C6C6D6D  # the PostgreSQL advisory lock all managers take to migrate ("llmm")


def migrate(engine: Engine, target: int | None = None) -> int:
    """Apply pending migrations in order, each with its version bump in one transaction; returns the version.

    On PostgreSQL the whole of it runs under an advisory lock, so managers starting together on an empty database
    migrate one after the other (without it, two concurrent ``CREATE TABLE IF NOT EXISTS`` can collide in
    PostgreSQL's catalog). On SQLite the no-op UPDATE takes the write lock first, to the same effect."""
    if engine.dialect.name != "postgresql":
        return _migrate(engine, target)
    with engine.connect() as lock:
        lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        try:
            return _migrate(engine, target)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            lock.commit()


def _migrate(engine: Engine, target: int | None) -> int:
    target = len(MIGRATIONS) if target is None else target
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)"))
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT COUNT(*) FROM schema_version WHERE id = 1")).scalar_one() == 0:
                conn.execute(text("INSERT INTO schema_version (id, version) VALUES (1, 0)"))
    except IntegrityError:  # another node inserted it first
        pass
    while True:
        with engine.begin() as conn:
            conn.execute(text("UPDATE schema_version SET version = version WHERE id = 1"))
            version = int(conn.execute(text("SELECT version FROM schema_version WHERE id = 1")).scalar_one())
            if version > len(MIGRATIONS):
                raise RuntimeError(f"usage database schema v{version} is newer than this llm-manager "
                                   f"(v{len(MIGRATIONS)}); upgrade llm-manager")
            if version >= target:
                return version
            MIGRATIONS[version](conn)
            conn.execute(text("UPDATE schema_version SET version = :v WHERE id = 1"), {"v": version + 1})
            log.info("usage database migrated to schema v%d", version + 1)
