"""Dated price books: parsing (errors name the block), the block in effect at its boundaries, tiers across a change
of price (live and repriced alike), and the billed-vs-repriced what-if. Figures are computed by hand."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pytest

from llm_manager.accounting.layer import Pricer
from llm_manager.accounting.price_book import billed_vs_repriced, edited_books
from llm_manager.accounting.pricing import PriceBook, parse_pricing, reprice
from llm_manager.accounting.record import UsageRecord
from llm_manager.config.parse import parse_config
from llm_manager.errors import ConfigError

OCT31 = datetime(2026, 10, 31, 12, tzinfo=timezone.utc).timestamp()
NOV1 = datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()
CHANGE = datetime(2026, 11, 15, 12, tzinfo=timezone.utc).timestamp()
DEC1 = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()

# per 1000 tokens; both blocks have a volume tier at 1,000 tokens in the month
BOOK = [
    {"effective_from": "2026-11-01", "input": 1, "output": 2, "per": 1000,
     "volume_tiers": [{"above_tokens": 1000, "input": 0.5, "output": 1}]},
    {"effective_from": "2026-11-15T12:00:00Z", "input": 3, "output": 4, "per": 1000,
     "volume_tiers": [{"above_tokens": 1000, "input": 2, "output": 3}]},
]

# (ts, prompt, completion, expected cost): tokens before each row in its month, and the block and tier that apply
ROWS = [
    (OCT31, 100, 100, 0.0),  # before the first block: no price in effect
    (NOV1, 600, 400, (600 * 1 + 400 * 2) / 1000),  # exactly at effective_from: first block, base (0 before)
    (CHANGE - 1, 10, 5, (10 * 0.5 + 5 * 1) / 1000),  # one second before the change: first block, tier (1000 before)
    (CHANGE, 10, 5, (10 * 2 + 5 * 3) / 1000),  # exactly at the change: second block, its tier (1015 before)
    (DEC1, 10, 5, (10 * 3 + 5 * 4) / 1000),  # a new month: second block, base again
]


def book() -> PriceBook:
    parsed = parse_pricing(BOOK, "models.m.pricing")
    assert parsed is not None
    return parsed


def test_block_in_effect_at_the_boundaries() -> None:
    b = book()
    assert b.at(NOV1 - 0.001) is None
    assert b.at(NOV1) is b.blocks[0] and b.at(CHANGE - 0.001) is b.blocks[0]
    assert b.at(CHANGE) is b.blocks[1] and b.at(DEC1 + 1e6) is b.blocks[1]
    assert b.starts == (NOV1, CHANGE)


def test_one_dict_is_a_book_in_effect_since_always() -> None:
    b = parse_pricing({"input": 1, "output": 2}, "p")
    assert b is not None and b.at(0.0) is b.blocks[0] and b.at(-1e12) is b.blocks[0]
    assert b.to_config() == b.blocks[0].to_dict()


def test_first_block_may_be_undated_and_offsets_are_honoured() -> None:
    b = parse_pricing([{"input": 1, "output": 1}, {"effective_from": "2026-11-01T02:00:00+02:00", "input": 2,
                                                   "output": 2}], "p")
    assert b is not None and b.starts == (float("-inf"), NOV1)
    assert b.at(0.0) is b.blocks[0] and b.at(NOV1) is b.blocks[1]
    naive = parse_pricing([{"effective_from": "2026-11-01T00:00:00", "input": 1, "output": 1}], "p")
    assert naive is not None and naive.starts == (NOV1,)  # no offset: UTC


def test_live_cost_under_the_book_matches_the_hand_figures() -> None:
    b = book()
    before = [0, 0, 1000, 1015, 0]
    for (ts, p, c, expected), n in zip(ROWS, before, strict=True):
        assert b.cost(p, c, n, ts) == pytest.approx(expected, rel=1e-15)


def test_live_pricer_keeps_the_month_volume_across_a_price_change() -> None:
    config = parse_config({"program": {}, "m": {"mode": "Chat", "port": 9, "pricing": BOOK,
                                                 "cpu": {"required_devices": [], "command": ["true"]}}})
    pricer = Pricer(config)
    costs = [pricer(UsageRecord(model="m", endpoint="chat/completions", status=200, ts=ts, prompt_tokens=p,
                                completion_tokens=c)) for ts, p, c, _ in ROWS]
    assert costs == pytest.approx([r[3] for r in ROWS], rel=1e-15)


def test_reprice_takes_each_rows_block_and_tier() -> None:
    df = pd.DataFrame({"ts": [r[0] for r in ROWS], "model": "m", "prompt_tokens": [r[1] for r in ROWS],
                       "completion_tokens": [r[2] for r in ROWS]})
    assert reprice(df, {"m": book()}).tolist() == pytest.approx([r[3] for r in ROWS], rel=1e-15)
    shuffled = df.iloc[[3, 0, 4, 2, 1]]  # frame order does not matter, ts does
    assert reprice(shuffled, {"m": book()}).tolist() == pytest.approx([ROWS[i][3] for i in (3, 0, 4, 2, 1)])
    # a plain Pricing block still works (one book in effect since always)
    assert reprice(df, {"m": book().blocks[0]}).iloc[0] == pytest.approx((100 * 1 + 100 * 2) / 1000)


def test_to_dict_shows_the_block_in_effect_and_the_book_round_trips() -> None:
    b = book()
    now = b.to_dict(CHANGE + 5)
    assert (now["input"], now["effective_from"], len(now["book"])) == (3.0, "2026-11-15T12:00:00Z", 2)
    assert b.to_dict(NOV1 - 5)["input"] == 1.0  # none in effect yet: the first block
    assert parse_pricing(b.to_config(), "p") == b


@pytest.mark.parametrize(("raw", "path", "expected"), [
    ([{"input": 1, "output": 1}, {"input": 2, "output": 2}], "m.pricing[1].effective_from", "required"),
    ([{"effective_from": "2026-11-15", "input": 1, "output": 1},
      {"effective_from": "2026-11-01", "input": 1, "output": 1}], "m.pricing[1].effective_from", "increasing"),
    ([{"effective_from": "2026-11-01", "input": 1, "output": 1},
      {"effective_from": "2026-11-01T00:00:00Z", "input": 1, "output": 1}], "m.pricing[1].effective_from",
     "increasing"),
    ([{"effective_from": "2026-13-01", "input": 1, "output": 1}], "m.pricing[0].effective_from", "YYYY-MM-DD"),
    ([{"effective_from": 20261101, "input": 1, "output": 1}], "m.pricing[0].effective_from", "YYYY-MM-DD"),
    ([{"effective_from": "2026-11-01", "input": 1}], "m.pricing[0].output", "required"),
    ([{"input": 1, "output": 1}, "cheap"], "m.pricing[1]", "expected object"),
    ([{"input": 1, "output": 1, "currency": "EUR"}, {"effective_from": "2026-11-01", "input": 1, "output": 1}],
     "m.pricing[1].currency", "one currency"),
])
def test_book_errors_name_the_block(raw: Any, path: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pricing(raw, "m.pricing")
    assert err.value.path == path and expected in err.value.expected


def test_a_bad_book_in_a_config_names_the_model(tmp_path: Any) -> None:
    bad = [BOOK[1], BOOK[0]]
    with pytest.raises(ConfigError) as err:
        parse_config({"program": {}, "m": {"mode": "Chat", "port": 9, "pricing": bad,
                                           "cpu": {"required_devices": [], "command": ["true"]}}})
    assert err.value.path == "models.m.pricing[1].effective_from"


def test_billed_vs_repriced_by_model_key_and_day() -> None:
    # billed at a flat 1/1000 per token; the edited book (BOOK) reprices
    df = pd.DataFrame({
        "ts": [NOV1, CHANGE - 1, CHANGE, CHANGE + 10, NOV1 + 60],
        "model": pd.Categorical(["m", "m", "m", "m", "other"]),
        "key_id": pd.Categorical(["a", "a", "b", None, "a"]),
        "prompt_tokens": [600, 10, 10, 100, 7], "completion_tokens": [400, 5, 5, 0, 3],
        "cost": [1.0, 0.015, 0.015, 0.1, 0.01],
        "cached": [False, False, False, True, False],
    })
    books = edited_books({"m": None, "other": parse_pricing({"input": 1, "output": 1, "per": 1000}, "p")},
                         {"m": BOOK})
    out = billed_vs_repriced(df, books, ("model", "key_id", "day"))
    rows = {(r.model, r.key_id, r.day.strftime("%d")): r for r in out.itertuples()}
    a_nov1 = rows["m", "a", "01"]
    assert (a_nov1.requests, a_nov1.total_tokens) == (1, 1000)
    assert a_nov1.billed == pytest.approx(1.0) and a_nov1.repriced == pytest.approx(1.4)
    a_15 = rows["m", "a", "15"]
    assert a_15.repriced == pytest.approx(0.01) and a_15.delta == pytest.approx(0.01 - 0.015)
    assert rows["m", "b", "15"].repriced == pytest.approx(0.035)
    assert rows["m", None, "15"].repriced == 0.0  # a cache hit stays free
    assert rows["other", "a", "01"].repriced == pytest.approx(10 / 1000)
    by_model = billed_vs_repriced(df, books, ("model",)).set_index("model")
    assert by_model.loc["m", "repriced"] == pytest.approx(1.4 + 0.01 + 0.035)
    assert by_model.loc["m", "billed"] == pytest.approx(1.13)
    total = billed_vs_repriced(df, books, ())
    assert total["requests"].tolist() == [5] and total["repriced"].iloc[0] == pytest.approx(1.455)
    assert billed_vs_repriced(df.iloc[:0], books).columns.tolist() == ["model", "key_id", "day", "requests",
                                                                      "total_tokens", "billed", "repriced", "delta"]


def test_billed_vs_repriced_applies_the_batch_discount_as_billed() -> None:
    df = pd.DataFrame({"ts": [NOV1, NOV1 + 1], "model": ["m", "m"], "key_id": ["a", "a"],
                       "prompt_tokens": [1000, 1000], "completion_tokens": [0, 0], "cost": [1.0, 0.5],
                       "batch_id": [None, "batch_1"]})
    out = billed_vs_repriced(df, {"m": book()}, ("model",), batch_discount={"m": 0.5})
    # 1000 prompt tokens each at 1/1000 (the second is still under the 1000-token tier: 1000 before -> tier 0.5)
    assert out["repriced"].iloc[0] == pytest.approx(1.0 + 1000 * 0.5 / 1000 * 0.5)


def test_reprice_under_a_book_equals_the_live_cost_row_by_row() -> None:
    import numpy as np

    from llm_manager.accounting.pricing import period_tokens_before

    rng = np.random.default_rng(7)
    n = 3000
    b = parse_pricing([
        {"input": 0.5, "output": 1, "per": 1000, "volume_tiers": [{"above_tokens": 50_000, "input": 0.25}]},
        {"effective_from": "2026-11-10", "input": 1, "output": 2, "per": 1000,
         "prompt_tiers": [{"above_prompt_tokens": 400, "input": 3, "output": 4}]},
        {"effective_from": "2026-12-05T06:30:00Z", "input": 2, "output": 2, "per": 1000,
         "volume_tiers": [{"above_tokens": 20_000, "input": 1, "output": 1}]},
    ], "p")
    assert b is not None
    ts = rng.uniform(OCT31 - 20 * 86400, DEC1 + 20 * 86400, n)
    ts[:5] = [NOV1, b.starts[1], b.starts[2], b.starts[1] - 1e-3, b.starts[2] - 1e-3]  # exactly at the changes
    df = pd.DataFrame({"ts": ts, "model": rng.choice(["m", "x"], n), "prompt_tokens": rng.integers(0, 800, n),
                       "completion_tokens": rng.integers(0, 300, n)})
    before = period_tokens_before(df)
    expected = [b.cost(int(p), int(c), int(n_), float(t)) if m == "m" else 0.0
                for t, m, p, c, n_ in zip(df["ts"], df["model"], df["prompt_tokens"], df["completion_tokens"],
                                          before, strict=True)]
    assert reprice(df, {"m": b}).tolist() == pytest.approx(expected, rel=1e-12)
