"""accounting.report: groups, sums and arguments, checked against hand-computed figures."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from llm_manager.accounting import report
from llm_manager.errors import BadRequest


def ts(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc).timestamp()


def frame() -> pd.DataFrame:
    """Six requests over a month boundary and two ISO weeks (2025-12-28 is a Sunday, 12-29 a Monday)."""
    rows = [  # ts, model, key, endpoint, status, error, cached, prompt, completion, cost
        (ts("2025-11-30", 23), "chat", "k1", "/v1/chat/completions", 200, None, False, 100, 10, 0.5),
        (ts("2025-12-01", 0), "chat", "k1", "/v1/chat/completions", 200, None, True, 100, 10, 0.0),
        (ts("2025-12-28"), "chat", None, "/v1/chat/completions", 500, "upstream", False, 40, 0, 0.1),
        (ts("2025-12-29"), "embed", "k2", "/v1/embeddings", 200, None, False, 300, 0, 0.03),
        (ts("2025-12-29", 13), "embed", "k1", "/v1/embeddings", 429, None, False, 0, 0, 0.0),
        (ts("2025-12-31", 23), "chat", "k2", "/v1/chat/completions", 200, None, False, 1000, 250, 2.25),
    ]
    df = pd.DataFrame(rows, columns=["ts", "model", "key_id", "endpoint", "status", "error", "cached",
                                     "prompt_tokens", "completion_tokens", "cost"])
    df["model"] = df["model"].astype("category")  # as the store returns them
    df["key_id"] = df["key_id"].astype("category")
    return df


def test_by_model_and_key_sums_by_hand():
    out = report.usage_report(frame(), ("model", "key"), {"k1": "search", "k2": "support"})
    assert list(out.columns) == ["model", "key", "key_name", *report.COLUMNS]
    rows = {(r["model"], r["key"]): r for r in out.to_dict("records")}
    assert set(rows) == {("chat", "k1"), ("chat", "k2"), ("chat", None), ("embed", "k1"), ("embed", "k2")}
    k1 = rows[("chat", "k1")]
    assert (k1["requests"], k1["errors"], k1["cached_requests"], k1["prompt_tokens"], k1["completion_tokens"],
            k1["total_tokens"], k1["token_cost"], k1["key_name"]) == (2, 0, 1, 200, 20, 220, 0.5, "search")
    nokey = rows[("chat", None)]
    assert (nokey["requests"], nokey["errors"], nokey["key_name"]) == (1, 1, "")  # an error row: status 500
    assert rows[("embed", "k1")]["errors"] == 1  # a 429 without an error text is an error too
    assert out["token_cost"].sum() == pytest.approx(2.88)
    assert list(out["model"]) == ["chat", "chat", "chat", "embed", "embed"]  # sorted by the group columns
    assert list(out["key"])[:3] == ["k1", "k2", None]  # no key sorts last


def test_time_groups_are_utc_days_monday_weeks_and_months():
    df = frame()
    days = report.usage_report(df, ("day",))
    assert list(days["day"]) == ["2025-11-30", "2025-12-01", "2025-12-28", "2025-12-29", "2025-12-31"]
    assert list(days["requests"]) == [1, 1, 1, 2, 1]
    weeks = report.usage_report(df, ("week",))
    assert list(weeks["week"]) == ["2025-11-24", "2025-12-01", "2025-12-22", "2025-12-29"]  # Mondays
    assert list(weeks["requests"]) == [1, 1, 1, 3]
    months = report.usage_report(df, ("month", "endpoint"))
    assert months[["month", "endpoint", "requests"]].values.tolist() == [
        ["2025-11", "/v1/chat/completions", 1], ["2025-12", "/v1/chat/completions", 3],
        ["2025-12", "/v1/embeddings", 2]]
    assert months["token_cost"].tolist() == pytest.approx([0.5, 2.35, 0.03])


def test_empty_frame_gives_the_columns_and_no_rows():
    out = report.usage_report(frame().iloc[:0], ("key", "day"), {})
    assert list(out.columns) == ["key", "key_name", "day", *report.COLUMNS] and len(out) == 0


def test_extra_columns_join_on_the_group_columns_and_missing_groups_count_zero():
    df = frame()
    shares = pd.DataFrame({"energy_wh": [1.0, 2.0, 0.0, 4.0, 0.0, 8.0]}, index=df.index)
    rep = report.build_report(df, report.parse_period("2025-11-01", "2025-12-31"), ("model",),
                              extras=[report.per_request_extra(df, shares),
                                      lambda by: pd.DataFrame({"model": ["chat"], "runtime_cost": [1.5]})])
    assert rep.table[["model", "energy_wh", "runtime_cost"]].values.tolist() == [["chat", 11.0, 1.5],
                                                                                ["embed", 4.0, 0.0]]
    assert rep.totals()["energy_wh"] == 15.0 and rep.totals()["requests"] == 6


def test_a_failing_extra_leaves_a_note_not_an_error():
    def broken(by):
        raise KeyError("power_watts")

    rep = report.build_report(frame(), report.parse_period("2025-12-01", "2025-12-31"), ("model",), extras=[broken])
    assert list(rep.table.columns) == ["model", *report.COLUMNS]
    assert rep.notes == ["extra columns left out: KeyError: 'power_watts'"]


def test_period_is_whole_utc_days_and_defaults_to_this_month():
    p = report.parse_period("2025-12-01", "2025-12-31")
    assert p.since == ts("2025-12-01", 0) and p.until == ts("2026-01-01", 0)
    assert report.parse_period(None, None, today=date(2026, 2, 17)) == report.Period(date(2026, 2, 1),
                                                                                       date(2026, 2, 17))


@pytest.mark.parametrize(("call", "param", "text"), [
    (lambda: report.parse_period("2025-13-01", None), "from", "expected a date YYYY-MM-DD"),
    (lambda: report.parse_period("2025-12-05", "2025-12-01"), "to", "is before from"),
    (lambda: report.parse_by("model,user"), "by", "unknown group 'user'"),
    (lambda: report.parse_by("day,day"), "by", "names a group twice"),
    (lambda: report.parse_format("xlsx"), "format", "expected one of csv, parquet, html, json"),
])
def test_bad_arguments_name_the_parameter(call, param, text):
    with pytest.raises(BadRequest) as exc:
        call()
    assert exc.value.status == 400 and exc.value.param == param and text in exc.value.message


def test_parquet_says_what_it_needs_when_pyarrow_is_missing():
    try:
        engine = report.parquet_engine()
    except BadRequest as exc:
        assert "pip install pyarrow" in exc.message
        return
    rep = report.build_report(frame(), report.parse_period("2025-11-01", "2025-12-31"), ("model",))
    back = pd.read_parquet(__import__("io").BytesIO(report.to_parquet(rep)), engine=engine)
    assert back["requests"].tolist() == [4, 2]
