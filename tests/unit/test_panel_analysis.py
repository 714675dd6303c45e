"""The analytics app's data layer and formatting: filters, cold starts, budget burn, what-if, the read-only
database source and the exports, on hand-made rows and a real SQLite usage store."""

from __future__ import annotations

import asyncio
import io
import math
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_manager.accounting import analytics
from llm_manager.panel_app import analysis as an
from llm_manager.panel_app import format as fmt
from llm_manager.panel_app.dashboard import Dashboard
from llm_manager.panel_app.database import DatabaseSource, readonly_engine
from llm_manager.panel_app.frames import frame_from_records
from llm_manager.panel_app.seed import seed
from llm_manager.panel_app.widgets import PARQUET, ExportTable

D0 = datetime(2025, 3, 1, tzinfo=timezone.utc).timestamp()
DAY = 86400.0


def rows(*specs: dict) -> pd.DataFrame:
    base = {"model": "a", "endpoint": "chat/completions", "status": 200, "prompt_tokens": 10, "completion_tokens": 5,
            "cost": 1.0, "total_ms": 100.0, "ttft_ms": 20.0}
    return analytics.prepare(frame_from_records([{**base, **s} for s in specs]))


# ---------------------------------------------------------------- formatting


def test_money_reads_as_money() -> None:
    assert fmt.money(1234.5) == "$1,234.50"
    assert fmt.money(0.0025) == "$0.0025"  # never 2.500e-3, never $0.00
    assert fmt.money(0.000012) == "$0.000012"
    assert fmt.money(0.5, "EUR") == "€0.5000" and fmt.money(3.1, "CHF") == "3.10 CHF"
    assert fmt.money(-2.0) == "-$2.00" and fmt.money(0) == "$0.00"
    assert fmt.money(float("nan")) == "—" and fmt.money(None) == "—"


def test_counts_latencies_and_shares() -> None:
    assert fmt.count(1234567) == "1,234,567" and fmt.compact(12_937_992) == "12.9 M" and fmt.compact(950) == "950"
    assert fmt.ms(850.4) == "850 ms" and fmt.ms(1250) == "1.25 s" and fmt.ms(150_000) == "2.5 min"
    assert fmt.percent(0.125) == "12.5 %" and fmt.ms(math.nan) == "—"
    col = fmt.money_column("USD")
    assert col["symbol"] == "$" and col["thousand"] == "," and not col["symbolAfter"]
    assert fmt.money_column("CHF")["symbolAfter"] is True


# ---------------------------------------------------------------- filters and views' data


def test_one_filter_set_narrows_every_view() -> None:
    df = rows({"ts": D0 + 10, "model": "a", "key_id": "k1"},
              {"ts": D0 + 20, "model": "b", "key_id": None, "endpoint": "embeddings", "status": 500, "error": "x"},
              {"ts": D0 + DAY, "model": "a", "key_id": "k2", "start_ms": 800.0},
              {"ts": D0 + 3 * DAY, "model": "b", "key_id": "k1"})
    assert an.options(df) == {"models": ["a", "b"], "keys": ["k1", "k2", an.NO_KEY],
                              "endpoints": ["chat/completions", "embeddings"]}
    everything = an.analyse(df, an.Filters(D0, D0 + 4 * DAY), now=D0 + 3.5 * DAY)
    assert everything.totals["requests"] == 4 and everything.totals["errors"] == 1
    f = an.Filters(D0, D0 + 2 * DAY, models=("a", "b"), keys=("k1", an.NO_KEY))
    a = an.analyse(df, f, now=D0 + 3.5 * DAY)
    assert a.totals["requests"] == 2  # the range drops day 3, the keys drop k2
    assert a.by_key["key_id"].tolist() == ["k1", an.NO_KEY] and a.by_model["requests"].tolist() == [1, 1]
    assert a.errors["status"].tolist() == [500] and a.latency["model"].tolist() == ["a"]
    assert a.over_time["requests"].tolist() == [2]
    b = an.analyse(df, an.Filters(D0, D0 + 4 * DAY, endpoints=("embeddings",)), now=D0 + 3.5 * DAY)
    assert b.totals["requests"] == 1 and b.by_model["model"].tolist() == ["b"]
    # the forecast follows models/keys/endpoints but always covers this month, whatever the date range
    assert b.forecast["month_to_date_cost"] == 1.0 and a.forecast["month_to_date_cost"] == 3.0  # k2's row is out


def test_cold_starts_pair_each_start_with_its_outcome() -> None:
    events = pd.DataFrame({"ts": [D0, D0 + 2.5, D0 + 100, D0 + 101, D0 + 200, D0 + 10],
                           "model": ["a", "a", "a", "a", "a", "b"],
                           "kind": ["start", "ready", "start", "crash", "start", "start"],
                           "detail": ["", "", "", "exit 1", "", ""]})
    starts = an.cold_starts(events)
    assert starts[["model", "outcome"]].values.tolist() == [["a", "starting"], ["a", "crash"], ["b", "starting"],
                                                             ["a", "ready"]]
    assert starts.loc[3, "seconds"] == 2.5 and starts.loc[1, "detail"] == "exit 1"
    lat = analytics.latency_percentiles(rows({"ts": D0, "start_ms": 900.0}, {"ts": D0 + 1}), column="start_ms")
    summary = an.cold_start_summary(starts, lat).set_index("model")
    assert summary.loc["a", ["starts", "ready", "failed"]].tolist() == [3, 1, 1]
    assert summary.loc["a", "load_p50_s"] == 2.5 and summary.loc["a", "wait_p50_ms"] == 900.0
    assert an.cold_starts(events, models=("b",))["model"].tolist() == ["b"]


def test_budget_burn_runs_to_the_forecast() -> None:
    df = rows({"ts": D0 + 100, "cost": 2.0}, {"ts": D0 + DAY + 100, "cost": 4.0})
    now = D0 + 1.5 * DAY
    fc = analytics.month_forecast(df, now)
    burn = an.budget_burn(df, now, 100.0, fc)
    assert len(burn) == 31 and burn["actual"].tolist()[:2] == [2.0, 6.0] and math.isnan(burn["actual"].iloc[2])
    assert burn["forecast"].iloc[-1] == pytest.approx(fc["month_end_forecast"]) and (burn["budget"] == 100).all()


def test_whatif_reprices_beside_the_bill() -> None:
    df = rows({"ts": D0, "model": "a", "prompt_tokens": 1_000_000, "completion_tokens": 0, "cost": 1.0},
              {"ts": D0 + DAY, "model": "b", "prompt_tokens": 0, "completion_tokens": 1_000_000, "cost": 2.0})
    prices, problems = an.parse_price_table([
        {"model": "a", "input": "3", "output": "one", "per": 1_000_000},
        {"model": "b", "input": 0.5, "output": 4.0, "per": None}, {"model": "", "input": 1}])
    assert problems == ["a: pricing.a.output: expected number"]
    out = an.whatif(df, prices)
    by_model = out["by_model"].set_index("model")
    assert by_model.loc["b", ["billed", "repriced", "difference"]].tolist() == [2.0, 4.0, 2.0]
    assert by_model.loc["b", "change"] == 1.0 and by_model.loc["a", "repriced"] == 0.0  # not priced: free
    assert out["over_time"]["billed"].tolist() == [1.0, 2.0]
    table = an.price_rows({"a": {"input": 0.5, "output": 1.5, "per": 1000}}, ["a", "c"])
    assert table.values.tolist()[0] == ["a", 0.5, 1.5, 1000]
    assert table["model"].tolist() == ["a", "c"] and table.loc[1, ["input", "output"]].isna().all()


# ---------------------------------------------------------------- the database alone, read-only


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "usage.db"
    seed(path, days=6, per_day=50, now=D0 + 10 * DAY)
    return path


def test_database_source_reads_every_table(store_file: Path) -> None:
    src = DatabaseSource(f"sqlite:///{store_file}", currency="EUR")
    df = asyncio.run(src.requests_frame(None, None))
    assert len(df) == 300 and isinstance(df["model"].dtype, pd.CategoricalDtype)
    assert df["ts"].is_monotonic_increasing
    events = asyncio.run(src.events_frame(None, None))
    assert set(events["kind"]) == {"start", "ready"} and len(events) == 2 * 6 * 1
    alerts = asyncio.run(src.alerts_frame(None, None))
    assert alerts["kind"].tolist() == ["crash_loop", "budget"]  # newest first
    assert alerts["delivery"].tolist() == ["https://hooks.example/x: failed: timeout", "https://hooks.example/x: delivered"]
    assert asyncio.run(src.budget()) == 50.0
    part = asyncio.run(src.requests_frame(D0 + 5 * DAY, D0 + 6 * DAY))
    assert len(part) == 50


def test_database_source_cannot_write(store_file: Path) -> None:
    engine = readonly_engine(f"sqlite:///{store_file}")
    with engine.connect() as conn, pytest.raises(Exception, match="readonly"):
        conn.exec_driver_sql("DELETE FROM request_log")
    with pytest.raises(FileNotFoundError):
        readonly_engine(f"sqlite:///{store_file.parent / 'missing.db'}")
    with pytest.raises(ValueError, match="file path"):
        readonly_engine("sqlite://")


async def test_an_older_schema_reads_as_empty_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a store from before alert_log and model_event
        conn.execute("CREATE TABLE request_log (id INTEGER PRIMARY KEY, ts FLOAT, model TEXT, key_id TEXT, "
                     "endpoint TEXT, status INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER, cost FLOAT, "
                     "total_ms FLOAT, ttft_ms FLOAT, error TEXT)")
        conn.execute("INSERT INTO request_log VALUES (1, ?, 'm', NULL, 'chat', 200, 3, 4, 0.5, 10.0, NULL, NULL)",
                     (D0,))
    src = DatabaseSource(f"sqlite:///{path}")
    d = Dashboard(src)
    assert not d.live and "Models" not in d.tab_names
    d.insights.bar.dates.value = (datetime(2025, 3, 1).date(), datetime(2025, 3, 2).date())
    await d.refresh_all()
    assert not d.insights.error.visible, d.insights.error.object
    a = d.insights.result
    assert a.totals["requests"] == 1 and a.totals["tokens"] == 7 and a.alerts.empty and a.starts.empty


# ---------------------------------------------------------------- exports


def test_exports_are_the_tables_frame() -> None:
    t = ExportTable("by_model", lambda: "USD")
    frame = pd.DataFrame({"model": ["a", "b"], "requests": [1200, 3], "cost": [0.0025, 1234.5],
                          "share": [0.5, np.nan]})
    t.update(frame)
    assert t.csv.filename == "by_model.csv"
    assert t.csv.callback().getvalue().decode().splitlines() == ["model,requests,cost,share", "a,1200,0.0025,0.5",
                                                                 "b,3,1234.5,"]
    assert t.table.value["share"].tolist() == [50.0, None]  # shown as a percentage, an empty cell for NaN
    assert t.table.formatters["cost"]["symbol"] == "$" and t.table.formatters["requests"]["thousand"] == ","
    if PARQUET:
        pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(t.parquet.callback().getvalue())), frame)
    else:  # no pyarrow/fastparquet: the button says what is missing instead of failing on click
        assert t.parquet.disabled and "pyarrow" in t.parquet.description


def test_a_column_that_changes_type_gets_new_cells() -> None:
    """A table first drawn from an empty answer (a float "model" column, before the fix in analytics) then from
    names: the browser's columns are rebuilt, or Tabulator kept the number formatter and showed "NaN"."""
    from bokeh.document import Document
    from bokeh.models import NumberFormatter, StringFormatter

    t = ExportTable("by_model", lambda: "USD")
    t.update(pd.DataFrame({"model": pd.Series([], dtype="float64"), "requests": pd.Series([], dtype="int64")}))
    model = t.table.get_root(Document())
    table = next(m for m in model.references() if hasattr(m, "columns") and hasattr(m, "configuration"))

    def formatter() -> object:
        return next(c.formatter for c in table.columns if c.field == "model")

    assert isinstance(formatter(), NumberFormatter)
    t.update(pd.DataFrame({"model": ["chat"], "requests": [4]}))
    assert isinstance(formatter(), StringFormatter)


def test_alerts_follow_the_date_range_and_the_models() -> None:
    df = rows({"ts": D0, "model": "a"}, {"ts": D0 + 1, "model": "b"})
    alerts = pd.DataFrame({"ts": [D0 + 5, D0 + 6, D0 + 2 * DAY], "kind": ["crash_loop", "budget", "crash_loop"],
                           "subject": ["a", "global", "b"], "message": ["", "", ""], "delivery": ["", "", ""]})
    a = an.analyse(df, an.Filters(D0, D0 + DAY), now=D0 + DAY, alerts=alerts)
    assert a.alerts["subject"].tolist() == ["a", "global"]  # the range drops b's
    b = an.analyse(df, an.Filters(D0, D0 + 3 * DAY, models=("b",)), now=D0 + DAY, alerts=alerts)
    assert b.alerts["subject"].tolist() == ["global", "b"]  # model a's alert is not about the selection
