"""Pricing: config parsing, the live per-request cost at every tier boundary, and vectorised repricing."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from llm_manager.accounting.pricing import (
    PriceBook,
    Pricing,
    PromptTier,
    VolumeTier,
    next_period_start,
    parse_pricing,
    period_start,
    period_tokens_before,
    reprice,
)
from llm_manager.errors import ConfigError

JAN = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
FEB = datetime(2025, 2, 1, tzinfo=timezone.utc).timestamp()

# per 1000 tokens; volume tiers at 1,000 and 5,000 tokens in the month; one prompt tier above 100 prompt tokens
P = Pricing(1.0, 2.0, per=1000,
            volume_tiers=(VolumeTier(1000, 0.5, 1.0), VolumeTier(5000, 0.25, 0.5)),
            prompt_tiers=(PromptTier(100, 4.0, 8.0),))


# ---------------------------------------------------------------- parsing


def test_parse_full_block_sorts_tiers_and_inherits_prices() -> None:
    p = parse_pricing({
        "input": 0.5, "output": 1.5, "currency": "EUR", "per": 1000,
        "volume_tiers": [{"above_tokens": 2000, "input": 0.3, "output": 1}, {"above_tokens": 1000, "input": 0.4}],
        "prompt_tiers": [{"above_prompt_tokens": 32000, "output": 3.0}],
    }, "models.m.pricing")
    assert p == PriceBook.single(Pricing(0.5, 1.5, "EUR", 1000.0, (VolumeTier(1000, 0.4, 1.5),
                                                                  VolumeTier(2000, 0.3, 1.0)),
                                         (PromptTier(32000, 0.5, 3.0),)))


def test_parse_defaults_and_none() -> None:
    assert parse_pricing(None, "x") is None
    p = parse_pricing({"input": 1, "output": 2}, "x")
    assert p == PriceBook.single(Pricing(1.0, 2.0, "USD", 1_000_000.0, (), ()))
    assert parse_pricing(p.to_config(), "x") == p
    assert parse_pricing(p.blocks[0].to_dict(), "x") == p


@pytest.mark.parametrize(("block", "path", "expected"), [
    ([], "m.pricing", "at least one price block"),
    ("cheap", "m.pricing", "expected object"),
    ({"output": 1}, "m.pricing.input", "required"),
    ({"input": 1}, "m.pricing.output", "required"),
    ({"input": "1", "output": 1}, "m.pricing.input", "expected number"),
    ({"input": True, "output": 1}, "m.pricing.input", "expected number"),
    ({"input": -1, "output": 1}, "m.pricing.input", ">= 0"),
    ({"input": 1, "output": 1, "per": 0}, "m.pricing.per", "> 0"),
    ({"input": 1, "output": 1, "currency": ""}, "m.pricing.currency", "non-empty string"),
    ({"input": 1, "output": 1, "inptu": 2}, "m.pricing.inptu", "unknown key"),
    ({"input": 1, "output": 1, "volume_tiers": {}}, "m.pricing.volume_tiers", "expected list"),
    ({"input": 1, "output": 1, "volume_tiers": [5]}, "m.pricing.volume_tiers[0]", "expected object"),
    ({"input": 1, "output": 1, "volume_tiers": [{"input": 1}]}, "m.pricing.volume_tiers[0].above_tokens",
     "required"),
    ({"input": 1, "output": 1, "volume_tiers": [{"above_tokens": -5}]},
     "m.pricing.volume_tiers[0].above_tokens", "integer >= 0"),
    ({"input": 1, "output": 1, "volume_tiers": [{"above_tokens": 5}, {"above_tokens": 5}]},
     "m.pricing.volume_tiers[1].above_tokens", "duplicate"),
    ({"input": 1, "output": 1, "prompt_tiers": [{"above_prompt_tokens": 5, "input": "x"}]},
     "m.pricing.prompt_tiers[0].input", "expected number"),
    ({"input": 1, "output": 1, "prompt_tiers": [{"above_tokens": 5}]},
     "m.pricing.prompt_tiers[0].above_tokens", "unknown key"),
])
def test_parse_errors_name_the_path(block: object, path: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_pricing(block, "m.pricing")  # type: ignore[arg-type]
    assert err.value.path == path
    assert expected in err.value.expected


# ---------------------------------------------------------------- live cost at the boundaries


@pytest.mark.parametrize(("before", "expected"), [
    (0, (10 * 1.0 + 5 * 2.0) / 1000),
    (999, (10 * 1.0 + 5 * 2.0) / 1000),  # one below the first tier
    (1000, (10 * 0.5 + 5 * 1.0) / 1000),  # exactly at: the tier applies
    (1001, (10 * 0.5 + 5 * 1.0) / 1000),
    (4999, (10 * 0.5 + 5 * 1.0) / 1000),
    (5000, (10 * 0.25 + 5 * 0.5) / 1000),
    (5001, (10 * 0.25 + 5 * 0.5) / 1000),
])
def test_volume_tier_boundaries(before: int, expected: float) -> None:
    assert P.cost(10, 5, before) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(("prompt", "before", "expected"), [
    (99, 0, (99 * 1.0 + 5 * 2.0) / 1000),
    (100, 0, (100 * 1.0 + 5 * 2.0) / 1000),  # exactly at: not above, so no prompt tier
    (101, 0, (101 * 4.0 + 5 * 8.0) / 1000),
    (100, 5000, (100 * 0.25 + 5 * 0.5) / 1000),  # volume tier still applies to short prompts
    (101, 5000, (101 * 4.0 + 5 * 8.0) / 1000),  # long prompt: prompt tier wins over the volume discount
])
def test_prompt_tier_boundaries_and_precedence(prompt: int, before: int, expected: float) -> None:
    assert P.cost(prompt, 5, before) == pytest.approx(expected, rel=1e-15)


def test_highest_prompt_tier_wins() -> None:
    p = Pricing(1.0, 1.0, per=1, prompt_tiers=(PromptTier(10, 2.0, 2.0), PromptTier(20, 3.0, 3.0)))
    assert [p.cost(n, 0) for n in (10, 11, 20, 21)] == [10.0, 22.0, 40.0, 63.0]


def test_period_start_is_utc_month() -> None:
    assert period_start(JAN) == JAN
    assert period_start(FEB - 0.5) == JAN
    assert period_start(FEB + 86400 * 3.7) == FEB
    assert next_period_start(JAN) == FEB
    assert next_period_start(datetime(2024, 12, 1, tzinfo=timezone.utc).timestamp()) == JAN


def test_live_pricer_volume_resets_at_the_month_boundary() -> None:
    from llm_manager.accounting.layer import Pricer
    from llm_manager.accounting.record import UsageRecord
    from llm_manager.config.parse import parse_config

    block = {"input": 1.0, "output": 2.0, "per": 1000, "volume_tiers": [{"above_tokens": 1000, "input": 0.5,
                                                                           "output": 1.0}]}
    config = parse_config({"program": {}, "m": {"aliases": [], "mode": "Chat", "port": 9, "pricing": block,
                                                 "cpu": {"required_devices": [], "command": ["true"]}}})
    pricer = Pricer(config)
    pricer.period, pricer.period_end = JAN, FEB

    def cost(ts: float) -> float:
        return pricer(UsageRecord(model="m", endpoint="chat/completions", status=200, ts=ts, prompt_tokens=600,
                                  completion_tokens=400))

    assert cost(JAN + 10) == pytest.approx(1.4)  # 1,000 tokens at the base price
    assert cost(JAN + 20) == pytest.approx(0.7)  # the month had 1,000 tokens already: the volume tier
    assert cost(FEB + 5) == pytest.approx(1.4)  # a new month starts from nothing
    assert (pricer.period, pricer.period_end) == (FEB, next_period_start(FEB))


# ---------------------------------------------------------------- reprice


def _frame(rows: list[tuple[float, str, int, int]], index: list[int] | None = None) -> pd.DataFrame:
    ts, model, prompt, completion = zip(*rows, strict=True)
    return pd.DataFrame({"ts": ts, "model": model, "prompt_tokens": prompt, "completion_tokens": completion},
                        index=index)


def test_reprice_volume_boundaries_months_and_models() -> None:
    df = _frame([
        (JAN + 1, "a", 10, 989),  # before 0 -> base
        (JAN + 2, "a", 1, 0),  # before 999 -> base (one below)
        (JAN + 3, "b", 10, 5),  # other model, unpriced -> 0
        (JAN + 4, "a", 10, 5),  # before 1000 -> tier 1 (exactly at)
        (JAN + 5, "a", 10, 5),  # before 1015 -> tier 1
        (FEB + 1, "a", 10, 5),  # new month: before 0 -> base
        (JAN + 6, "c", 10, 5),  # model missing from the mapping -> 0
    ], index=[10, 11, 12, 13, 14, 15, 16])
    assert period_tokens_before(df).tolist() == [0, 999, 0, 1000, 1015, 0, 0]
    cost = reprice(df, {"a": P, "b": None})
    base, tier1 = (10 + 989 * 2) / 1000, (10 * 0.5 + 5 * 1.0) / 1000
    expected = [base, 1 / 1000, 0.0, tier1, tier1, (10 + 10) / 1000, 0.0]
    assert cost.index.tolist() == df.index.tolist()
    assert cost.tolist() == pytest.approx(expected, rel=1e-15)


def test_reprice_prompt_tiers_and_unsorted_frame() -> None:
    df = _frame([
        (JAN + 30, "a", 101, 5),  # before 1000+100+5 -> long prompt: prompt tier
        (JAN + 10, "a", 900, 100),  # before 0, long prompt -> prompt tier
        (JAN + 20, "a", 100, 5),  # before 1000 -> short prompt: volume tier 1
    ])
    assert period_tokens_before(df).tolist() == [1105, 0, 1000]
    cost = reprice(df, {"a": P})
    assert cost.tolist() == pytest.approx([(101 * 4 + 5 * 8) / 1000, (900 * 4 + 100 * 8) / 1000,
                                           (100 * 0.5 + 5 * 1.0) / 1000], rel=1e-15)


def test_reprice_empty() -> None:
    out = reprice(_frame([(JAN, "a", 1, 1)]).iloc[:0], {"a": P})
    assert out.empty and out.dtype == np.float64


@pytest.mark.parametrize("categorical", [False, True])
def test_reprice_equals_row_by_row_on_random_frame(categorical: bool) -> None:
    rng = np.random.default_rng(42)
    n = 2000
    pricing = {
        "a": P,
        "b": Pricing(0.3, 0.9, per=1_000_000, volume_tiers=(VolumeTier(20_000, 0.2, 0.6),
                                                           VolumeTier(60_000, 0.1, 0.3)),
                     prompt_tiers=(PromptTier(500, 1.0, 2.0), PromptTier(900, 2.0, 4.0))),
        "c": Pricing(0.1, 0.1),
        "d": None,
    }
    ts = rng.uniform(JAN - 10 * 86400, FEB + 20 * 86400, n)  # three months
    ts[::7] = ts[0]  # ties: resolved in frame order
    df = pd.DataFrame({
        "ts": ts, "model": rng.choice(["a", "b", "c", "d", "e"], n),
        "prompt_tokens": rng.integers(0, 1000, n), "completion_tokens": rng.integers(0, 500, n),
    }, index=rng.permutation(n) + 1000)
    if categorical:
        df["model"] = df["model"].astype("category")
    running: dict[tuple[str, float], int] = {}
    expected = pd.Series(0.0, index=df.index)
    for idx in df.sort_values("ts", kind="stable").index:
        row = df.loc[idx]
        key = (str(row["model"]), period_start(row["ts"]))
        before = running.get(key, 0)
        p, c = int(row["prompt_tokens"]), int(row["completion_tokens"])
        price = pricing.get(key[0])
        expected[idx] = price.cost(p, c, before) if price else 0.0
        running[key] = before + p + c
    got = reprice(df, pricing)
    assert got.index.equals(df.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12, atol=0)
    assert (got > 0).sum() > n // 2
