"""Analytics over small hand-made request frames, with hand-computed results."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llm_manager.accounting import analytics as an
from llm_manager.accounting.percentiles import group_percentiles, percentiles_of
from llm_manager.panel_app import whatif as wi

D0 = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
DAY = 86400.0
COLUMNS = ["id", "ts", "model", "alias", "key_id", "client_ip", "endpoint", "status", "stream", "prompt_tokens",
           "completion_tokens", "total_tokens", "estimated", "queue_ms", "start_ms", "ttft_ms", "total_ms", "cost",
           "error", "time"]


def frame(rows: list[dict[str, Any]], categorical: bool = False) -> pd.DataFrame:
    """A frame shaped like ``UsageStore.requests_frame``."""
    full = []
    for i, r in enumerate(rows):
        row = {"id": i + 1, "model": "a", "alias": "", "key_id": None, "client_ip": "", "endpoint": "chat",
               "status": 200, "stream": False, "prompt_tokens": 0, "completion_tokens": 0, "estimated": False,
               "queue_ms": 0.0, "start_ms": 0.0, "ttft_ms": None, "total_ms": 0.0, "cost": 0.0, "error": None}
        row.update(r)
        row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
        full.append(row)
    df = pd.DataFrame(full, columns=COLUMNS[:-1]).astype({"ts": "float64", "ttft_ms": "float64", "cost": "float64",
                                                           "total_ms": "float64", "status": "int64"})
    df["time"] = pd.to_datetime(df["ts"], unit="s", utc=True)
    if categorical:
        for col in ("model", "alias", "key_id", "endpoint"):
            df[col] = df[col].astype("category")
    return df


ROWS = [
    {"ts": D0 + 10, "model": "a", "key_id": "k1", "prompt_tokens": 10, "completion_tokens": 5, "cost": 0.1,
     "total_ms": 100, "ttft_ms": 10},
    {"ts": D0 + 3605, "model": "a", "key_id": "k2", "prompt_tokens": 20, "completion_tokens": 10, "cost": 0.2,
     "total_ms": 200, "ttft_ms": 20},
    {"ts": D0 + DAY + 1, "model": "b", "key_id": "k1", "status": 500, "prompt_tokens": 5, "cost": 0.0,
     "total_ms": 50, "error": "boom"},
    {"ts": D0 + 2 * DAY + 7200, "model": "b", "prompt_tokens": 100, "completion_tokens": 50, "cost": 1.0,
     "total_ms": 400},
    {"ts": D0 + 2 * DAY + 7230, "model": "a", "key_id": "k1", "prompt_tokens": 1, "completion_tokens": 1,
     "cost": 0.05, "total_ms": 300, "ttft_ms": 30},
]
EMPTY = frame([]).iloc[:0]


@pytest.fixture(params=[False, True], ids=["object", "categorical"])
def df(request: pytest.FixtureRequest) -> pd.DataFrame:
    return frame(ROWS, categorical=request.param)


def rows_of(out: pd.DataFrame, cols: list[str]) -> list[list[Any]]:
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in r]
            for r in out[cols].itertuples(index=False, name=None)]


TOT = ["requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost", "errors"]


def test_by_model(df: pd.DataFrame) -> None:
    out = an.by_model(df)
    assert list(out.columns) == ["model", *TOT]
    assert rows_of(out, ["model", *TOT]) == [["b", 2, 105, 50, 155, 1.0, 1], ["a", 3, 31, 16, 47, pytest.approx(0.35), 0]]


def test_by_key_keeps_requests_without_key(df: pd.DataFrame) -> None:
    out = an.by_key(df)
    got = rows_of(out, ["key_id", *TOT])
    assert got[0] == [None, 1, 100, 50, 150, 1.0, 0]
    assert got[1] == ["k2", 1, 20, 10, 30, 0.2, 0]
    assert got[2][:4] == ["k1", 3, 16, 6] and got[2][4:] == [22, pytest.approx(0.15), 1]


def test_by_period_day_and_hour(df: pd.DataFrame) -> None:
    day = an.by_period(df, "D")
    assert day["time"].tolist() == [pd.Timestamp(D0 + i * DAY, unit="s", tz="UTC") for i in range(3)]
    assert rows_of(day, TOT) == [[2, 30, 15, 45, pytest.approx(0.3), 0], [1, 5, 0, 5, 0.0, 1],
                                 [2, 101, 51, 152, 1.05, 0]]
    hour = an.by_period(df, "h")
    assert len(hour) == 51  # hours 0..50, empty ones included
    assert hour["requests"].sum() == 5
    assert hour.loc[[0, 1, 24, 50], "requests"].tolist() == [1, 1, 1, 2]
    assert hour.loc[50, "total_tokens"] == 152 and hour.loc[2, "requests"] == 0
    assert hour.loc[50, "time"] == pd.Timestamp(D0 + 50 * 3600, unit="s", tz="UTC")
    assert an.by_period(df, "H").equals(hour)


def test_by_period_unsorted_frame_matches_sorted(df: pd.DataFrame) -> None:
    shuffled = df.iloc[[3, 0, 4, 2, 1]]
    pd.testing.assert_frame_equal(an.by_period(shuffled, "D"), an.by_period(df, "D"))


def test_by_period_rejects_calendar_freq(df: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="fixed duration"):
        an.by_period(df, "MS")


def test_latency_percentiles_by_model(df: pd.DataFrame) -> None:
    out = an.latency_percentiles(df)
    cols = ["model", "requests", "total_ms_p50", "total_ms_p95", "total_ms_p99", "ttft_ms_p50", "ttft_ms_p95",
            "ttft_ms_p99"]
    assert list(out.columns) == cols
    a, b = rows_of(out, cols)
    # a: total [100, 200, 300] -> p95 at position 1.9, p99 at 1.98; ttft [10, 20, 30]
    assert a == ["a", 3, 200.0, pytest.approx(290.0), pytest.approx(298.0), 20.0, pytest.approx(29.0),
                 pytest.approx(29.8)]
    # b: the 500 is not counted; the one success has no TTFT
    assert b == ["b", 1, 400.0, 400.0, 400.0, None, None, None]


def test_latency_percentiles_overall(df: pd.DataFrame) -> None:
    out = an.latency_percentiles(df, by=None)
    assert len(out) == 1 and "model" not in out.columns
    r = out.iloc[0]
    assert r["requests"] == 4
    assert [r["total_ms_p50"], r["total_ms_p95"], r["total_ms_p99"]] == pytest.approx([250.0, 385.0, 397.0])
    assert [r["ttft_ms_p50"], r["ttft_ms_p95"], r["ttft_ms_p99"]] == pytest.approx([20.0, 29.0, 29.8])


def test_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 101, 4000):
        x = rng.gamma(2.0, 100.0, n)
        np.testing.assert_allclose(percentiles_of(x.copy()), np.percentile(x, [50, 95, 99]), rtol=1e-12)


def test_throughput_per_minute() -> None:
    df = frame([
        {"ts": D0 + 0, "prompt_tokens": 40, "completion_tokens": 20},
        {"ts": D0 + 30, "prompt_tokens": 100, "completion_tokens": 20},
        {"ts": D0 + 125, "prompt_tokens": 0, "completion_tokens": 30},
    ])
    out = an.throughput(df, "1min")
    assert out["time"].tolist() == [pd.Timestamp(D0 + 60 * i, unit="s", tz="UTC") for i in range(3)]
    assert out["requests"].tolist() == [2, 0, 1]
    assert out["requests_per_s"].tolist() == pytest.approx([2 / 60, 0.0, 1 / 60])
    assert out["tokens_per_s"].tolist() == pytest.approx([3.0, 0.0, 0.5])
    assert out["completion_tokens_per_s"].tolist() == pytest.approx([40 / 60, 0.0, 0.5])


def test_month_forecast_average_with_few_days() -> None:
    df = frame([{"ts": D0 - 100, "cost": 99.0}, {"ts": D0 + 10, "cost": 3.0}, {"ts": D0 + 2 * DAY, "cost": 7.0}])
    f = an.month_forecast(df, D0 + 1.5 * DAY)  # the previous month and the future are not counted
    assert f == {"month_to_date_cost": 3.0, "month_end_forecast": pytest.approx(62.0), "daily_average": 2.0,
                 "days_elapsed": 1.5, "days_in_month": 31, "method": "average",
                 "forecast_low": 3.0, "forecast_high": pytest.approx(121.0)}  # the spend so far up to twice the rest


def test_month_forecast_linear_trend() -> None:
    # complete days 0..3 cost 1, 2, 3, 4 (fit: d + 1); half of day 4 so far cost 2.5
    rows = [{"ts": D0 + d * DAY + 100, "cost": float(d + 1)} for d in range(4)]
    df = frame([*rows, {"ts": D0 + 4 * DAY + 60, "cost": 2.5}])
    f = an.month_forecast(df, D0 + 4.5 * DAY)
    rest = 0.5 * 5 + sum(d + 1 for d in range(5, 31))  # the rest of day 4, then days 5..30
    assert rest == 2.5 + 481
    assert f["month_to_date_cost"] == 12.5
    assert f["month_end_forecast"] == pytest.approx(12.5 + rest)
    assert f["daily_average"] == pytest.approx(12.5 / 4.5)
    assert (f["days_elapsed"], f["days_in_month"], f["method"]) == (4.5, 31, "trend")


def test_month_forecast_falling_trend_never_negative() -> None:
    df = frame([{"ts": D0 + d * DAY + 100, "cost": float(4 - d)} for d in range(4)])
    f = an.month_forecast(df, D0 + 4 * DAY)  # fit 4 - d: zero from day 4 on
    assert f["month_end_forecast"] == pytest.approx(10.0)


def test_empty_frame_everywhere() -> None:
    assert an.by_model(EMPTY).empty and list(an.by_model(EMPTY).columns) == ["model", *TOT]
    assert an.by_key(EMPTY).empty
    assert an.by_period(EMPTY, "h").empty and "time" in an.by_period(EMPTY).columns
    assert an.latency_percentiles(EMPTY).empty and an.latency_percentiles(EMPTY, by=None).empty
    assert an.throughput(EMPTY).empty
    leap = datetime(2024, 2, 10, tzinfo=timezone.utc).timestamp()
    f = an.month_forecast(EMPTY, leap)
    assert (f["month_to_date_cost"], f["month_end_forecast"], f["daily_average"], f["days_in_month"]) == (0, 0, 0, 29)
    s = an.summary(EMPTY, leap)
    assert (s["total_requests"], s["total_tokens"], s["total_cost"]) == (0, 0, 0.0)
    assert s["by_model"] == s["by_key"] == s["by_day"] == []
    json.dumps(s)


def test_only_errors_gives_empty_latency() -> None:
    assert an.latency_percentiles(frame([{"ts": D0, "status": 503}])).empty


def test_summary_is_json_ready(df: pd.DataFrame) -> None:
    s = an.summary(df, D0 + 3 * DAY)
    assert (s["total_requests"], s["total_tokens"], s["total_errors"]) == (5, 202, 1)
    assert s["total_cost"] == pytest.approx(1.35)
    assert [m["model"] for m in s["by_model"]] == ["b", "a"]
    assert s["by_model"][1] == {"model": "a", "requests": 3, "prompt_tokens": 31, "completion_tokens": 16,
                                "total_tokens": 47, "cost": pytest.approx(0.35), "errors": 0}
    assert s["by_key"][0]["key_id"] is None
    assert [d["time"] for d in s["by_day"]] == ["2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00",
                                                "2025-01-03T00:00:00+00:00"]
    assert s["forecast"]["method"] == "trend" and s["forecast"]["month_to_date_cost"] == pytest.approx(1.35)
    back = json.loads(json.dumps(s))
    assert back["by_model"][0]["requests"] == 2 and isinstance(s["by_model"][0]["requests"], int)


# ---------------------------------------------------------------- the dashboard's aggregates


def test_prepare_keeps_answers_and_flags_errors(df: pd.DataFrame) -> None:
    p = an.prepare(df)
    assert list(p["is_error"]) == [False, False, True, False, False]
    assert isinstance(p["model"].dtype, pd.CategoricalDtype)
    assert p["error"].isna().tolist() == [True, True, False, True, True] and p["error"].iloc[2] == "boom"
    for fn in (an.by_model, an.by_key, lambda d: an.by_period(d, "D"), an.latency_percentiles, an.errors_by_status):
        pd.testing.assert_frame_equal(fn(p), fn(df), check_dtype=False)


def test_week_buckets_start_on_monday() -> None:
    # 2025-01-01 was a Wednesday: its week began on Monday 2024-12-30
    out = an.by_period(frame([{"ts": D0 + 10, "cost": 1.0}, {"ts": D0 + 6 * DAY, "cost": 2.0}]), "W")
    assert out["time"].dt.strftime("%Y-%m-%d %a").tolist() == ["2024-12-30 Mon", "2025-01-06 Mon"]
    assert out["cost"].tolist() == [1.0, 2.0]


def test_by_period_split_by_model(df: pd.DataFrame) -> None:
    out = an.by_period(df, "D", by="model")
    assert rows_of(out, ["model", "requests", "cost"]) == [["a", 2, pytest.approx(0.3)], ["b", 1, 0.0],
                                                           ["a", 1, pytest.approx(0.05)], ["b", 1, 1.0]]
    assert out["time"].dt.day.tolist() == [1, 2, 3, 3]


def test_by_pair_is_each_models_keys(df: pd.DataFrame) -> None:
    out = an.by_pair(df, "model", "key_id")
    assert rows_of(out, ["model", "key_id", "requests", "cost", "errors"]) == [
        ["b", None, 1, 1.0, 0], ["a", "k2", 1, 0.2, 0], ["a", "k1", 2, pytest.approx(0.15), 0],
        ["b", "k1", 1, 0.0, 1]]


def test_errors_by_status() -> None:
    df = frame([{"ts": D0, "status": 500, "error": "boom"}, {"ts": D0 + 1, "status": 429, "error": "slow down"},
                {"ts": D0 + 2, "status": 500, "error": "again"}, {"ts": D0 + 3}])
    out = an.errors_by_status(df)
    assert rows_of(out, ["status", "errors", "share", "example"]) == [[500, 2, 0.5, "boom"],
                                                                      [429, 1, 0.25, "slow down"]]
    assert an.errors_by_status(frame([{"ts": D0}])).empty


def test_filter_mask_on_codes(df: pd.DataFrame) -> None:
    assert an.filter_mask(df, model=[], key_id=None) is None
    assert an.filter_mask(df, model=["b"]).tolist() == [False, False, True, True, False]
    assert an.filter_mask(df, model=["a", "b"], key_id=[None]).tolist() == [False, False, False, True, False]
    assert not an.filter_mask(df, model=["nope"]).any()


@pytest.mark.parametrize("values", ["gamma", "ties", "zeros", "wide", "negative"])
def test_large_group_percentiles_are_exact(values: str) -> None:
    """Above 200,000 rows the histogram path answers; it must equal numpy's percentiles exactly."""
    rng = np.random.default_rng(5)
    n = 300_000
    x = {"gamma": rng.gamma(2.0, 100.0, n), "ties": np.round(rng.gamma(2.0, 100.0, n)), "zeros": np.zeros(n),
         "wide": np.concatenate([np.full(n // 2, 5.0), rng.uniform(1e-6, 1e9, n - n // 2)]),
         "negative": rng.normal(0.0, 1.0, n)}[values]
    codes = rng.integers(0, 4, n).astype(np.int8)
    got = group_percentiles(codes, 5, x)
    for g in range(4):
        np.testing.assert_allclose(got[g], np.percentile(x[codes == g], [50, 95, 99]), rtol=1e-12)
    assert np.isnan(got[4]).all()  # an empty group


def test_start_ms_percentiles_count_only_the_rows_that_waited() -> None:
    df = frame([{"ts": D0, "start_ms": 0.0}, {"ts": D0 + 1, "start_ms": 1000.0}, {"ts": D0 + 2, "start_ms": 3000.0}])
    out = an.latency_percentiles(df, column="start_ms")
    assert out["start_ms_p50"].tolist() == [2000.0] and out["requests"].tolist() == [3]


def test_forecast_band_from_the_trend_residuals() -> None:
    # complete days cost 1, 3, 1, 3 (fit: flat 2 with residuals of 1): the band widens with the days left
    rows = [{"ts": D0 + d * DAY + 100, "cost": c} for d, c in enumerate((1.0, 3.0, 1.0, 3.0))]
    f = an.month_forecast(frame(rows), D0 + 4 * DAY)
    assert f["method"] == "trend"
    left = 31 - 4
    sigma = float(np.std(np.array([1.0, 3.0, 1.0, 3.0]) - np.polyval(np.polyfit(range(4), [1, 3, 1, 3], 1),
                                                                       range(4)), ddof=2))
    assert f["forecast_high"] - f["month_end_forecast"] == pytest.approx(1.96 * sigma * np.sqrt(left))
    assert f["forecast_low"] >= f["month_to_date_cost"] == 8.0


def _priced_frame(rows: int, seed: int, shuffle: bool = False) -> pd.DataFrame:
    """Rows over Jan-Mar 2025 (month and price-block boundaries inside), three priced models and a free one."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(D0 - 5 * DAY, D0 + 70 * DAY, rows))
    ts[:3] = D0 + 31 * DAY  # rows exactly on a month start (and a block start below)
    ts.sort()
    df = frame([{"ts": float(t), "model": m, "prompt_tokens": int(p), "completion_tokens": int(c)}
                for t, m, p, c in zip(ts, rng.choice(["a", "b", "c", "free"], rows), rng.integers(1, 50_000, rows),
                                      rng.integers(1, 3_000, rows), strict=True)], categorical=True)
    return df.sample(frac=1.0, random_state=seed) if shuffle else df


def _books() -> dict[str, Any]:
    from llm_manager.accounting.pricing import parse_pricing

    tiers = {"input": 1.0, "output": 2.0, "volume_tiers": [{"above_tokens": 2_000_000, "input": 0.5, "output": 1.0}],
             "prompt_tiers": [{"above_prompt_tokens": 32_000, "input": 3.0, "output": 4.0}]}
    two = {**tiers, "prompt_tiers": [*tiers["prompt_tiers"], {"above_prompt_tokens": 45_000, "input": 5.0,
                                                               "output": 6.0}]}  # thresholds b does not have
    return {"a": parse_pricing(two),
            "b": parse_pricing([{"effective_from": "2025-01-15", "input": 0.2, "output": 0.4},
                                {"effective_from": "2025-02-01", **tiers}]),  # nothing billed before Jan 15
            "c": parse_pricing({"input": 0.1, "output": 0.1}), "free": None}


@pytest.mark.parametrize(("shuffle", "chunk"), [(False, 1 << 16), (False, 7), (False, 64), (True, 64)])
def test_reprice_is_pricing_reprice(shuffle: bool, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's what-if reprice gives exactly the general one's numbers: tiers (crossings found in any chunk,
    and right after one), month resets, dated blocks; an unsorted frame takes the general path."""
    from llm_manager.accounting.pricing import reprice

    monkeypatch.setattr(wi, "_CHUNK", chunk)
    df = _priced_frame(3000, 11, shuffle)
    books = _books()
    fast, general = wi.reprice(df, books), reprice(df, books)
    assert fast.index.equals(df.index)
    np.testing.assert_array_equal(fast.to_numpy(), general.to_numpy())
    free = (df["model"] == "free").to_numpy()
    assert (fast.to_numpy()[free] == 0).all() and (fast.to_numpy()[~free] > 0).any()
    early_b = ((df["model"] == "b") & (df["ts"] < datetime(2025, 1, 15, tzinfo=timezone.utc).timestamp())).to_numpy()
    assert early_b.any() and (fast.to_numpy()[early_b] == 0).all()
    assert wi.reprice(df.iloc[:0], books).empty


def test_billed_vs_repriced_sums_by_model_and_day() -> None:
    df = frame([{"ts": D0 + 10, "model": "a", "prompt_tokens": 1_000_000, "cost": 1.0},
                {"ts": D0 + DAY + 10, "model": "a", "completion_tokens": 1_000_000, "cost": 1.0},
                {"ts": D0 + DAY + 20, "model": "b", "prompt_tokens": 10, "cost": 0.5}], categorical=True)
    out = wi.billed_vs_repriced(df, {"a": _books()["c"]}, "D")
    by = out["by_model"].set_index("model")
    assert by.loc["a", "billed"] == 2.0 and by.loc["a", "repriced"] == pytest.approx(0.2)
    assert by.loc["a", "change"] == pytest.approx(-0.9) and by.loc["b", "repriced"] == 0.0
    assert out["over_time"]["billed"].tolist() == [1.0, 1.5]
    assert out["over_time"]["repriced"].tolist() == pytest.approx([0.1, 0.1])
    assert out["totals"].iloc[0].tolist() == pytest.approx([2.5, 0.2])
    empty = wi.billed_vs_repriced(df.iloc[:0], {}, "D")
    assert empty["by_model"].empty and empty["over_time"].empty and empty["totals"].iloc[0].tolist() == [0.0, 0.0]


def test_empty_answers_have_the_columns_types() -> None:
    """Labels stay objects with no rows: a table built from an empty answer must not type "model" as a number."""
    empty = an.prepare(frame([]))
    for out in (an.by_model(empty), an.by_pair(empty), an.latency_percentiles(empty),
                an.by_period(empty, "D", by="model")):
        assert out["model"].dtype == object
    assert an.by_key(empty)["key_id"].dtype == object
