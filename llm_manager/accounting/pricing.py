"""Per-model pricing: one small pure function for the live path, one vectorised one for repricing history.

A model's config may carry a ``pricing`` block::

    "pricing": {
      "input": 0.5, "output": 1.5,          # price per `per` prompt / completion tokens (required)
      "currency": "USD",                    # label only (default "USD")
      "per": 1000000,                       # token unit the prices are quoted for (default 1M)
      "volume_tiers": [                     # optional: cheaper as the month's volume grows
        {"above_tokens": 10000000, "input": 0.4, "output": 1.2}
      ],
      "prompt_tiers": [                     # optional: dearer for long prompts
        {"above_prompt_tokens": 32000, "input": 1.0, "output": 3.0}
      ]
    }

A tier may omit ``input`` or ``output``; the omitted price is the base price.

Rules (kept deliberately simple so the bill can be recomputed by hand):

* **Volume tiers** count the model's cumulative tokens (prompt + completion) in the billing period, the calendar month
  in UTC. A request is priced *entirely* at the tier in force when it starts: the highest tier whose ``above_tokens``
  is <= the model's tokens in the month *before* this request. A request that crosses a threshold is not split.
  When history is repriced, "before" means rows of the same model and month with an earlier ``ts`` (ties keep frame
  order), so reprice whole months: rows missing from the frame are not counted.
* **Prompt tiers** apply to a request whose ``prompt_tokens`` is strictly greater than ``above_prompt_tokens`` (the
  highest such tier wins) and then take precedence over volume tiers: a long prompt never gets a volume discount.
* cost = (prompt_tokens * input + completion_tokens * output) / per.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llm_manager.errors import ConfigError

if TYPE_CHECKING:  # pandas is imported by the functions that take frames: config.py imports this module
    import pandas as pd

__all__ = ["Pricing", "PromptTier", "VolumeTier", "parse_pricing", "period_start", "reprice"]

_TOP_KEYS = {"input", "output", "currency", "per", "volume_tiers", "prompt_tiers"}


@dataclass(frozen=True, slots=True)
class VolumeTier:
    above_tokens: int
    input: float
    output: float


@dataclass(frozen=True, slots=True)
class PromptTier:
    above_prompt_tokens: int
    input: float
    output: float


@dataclass(frozen=True, slots=True)
class Pricing:
    """A validated pricing block; tiers are sorted by threshold, ascending."""

    input: float
    output: float
    currency: str = "USD"
    per: float = 1_000_000.0
    volume_tiers: tuple[VolumeTier, ...] = ()
    prompt_tiers: tuple[PromptTier, ...] = ()

    def prices(self, prompt_tokens: int, period_tokens_before: int) -> tuple[float, float]:
        """(input, output) price in force for one request, by the rules in the module docstring."""
        for tier in reversed(self.prompt_tiers):
            if prompt_tokens > tier.above_prompt_tokens:
                return tier.input, tier.output
        for vtier in reversed(self.volume_tiers):
            if period_tokens_before >= vtier.above_tokens:
                return vtier.input, vtier.output
        return self.input, self.output

    def cost(self, prompt_tokens: int, completion_tokens: int, period_tokens_before: int = 0) -> float:
        """Cost of one request; pure and allocation-free so the proxy can call it on the IOLoop."""
        inp, out = self.prices(prompt_tokens, period_tokens_before)
        return (prompt_tokens * inp + completion_tokens * out) / self.per

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input, "output": self.output, "currency": self.currency, "per": self.per,
            "volume_tiers": [{"above_tokens": t.above_tokens, "input": t.input, "output": t.output}
                             for t in self.volume_tiers],
            "prompt_tiers": [{"above_prompt_tokens": t.above_prompt_tokens, "input": t.input, "output": t.output}
                             for t in self.prompt_tiers],
        }


# ---------------------------------------------------------------- parsing


def _num(value: Any, path: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ConfigError(path, "expected number")
    if positive and value <= 0:
        raise ConfigError(path, "expected number > 0")
    if value < 0:
        raise ConfigError(path, "expected number >= 0")
    return float(value)


def _count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(path, "expected integer >= 0")
    return value


def _tiers(raw: Any, path: str, key: str, base: tuple[float, float]) -> list[tuple[int, float, float]]:
    if not isinstance(raw, list):
        raise ConfigError(path, "expected list of tiers")
    tiers: list[tuple[int, float, float]] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(p, "expected object")
        unknown = sorted(set(item) - {key, "input", "output"})
        if unknown:
            raise ConfigError(f"{p}.{unknown[0]}", f"unknown key; expected one of {key}, input, output")
        if key not in item:
            raise ConfigError(f"{p}.{key}", "required")
        threshold = _count(item[key], f"{p}.{key}")
        if threshold in seen:
            raise ConfigError(f"{p}.{key}", f"duplicate threshold {threshold} (also in {path}[{seen[threshold]}])")
        seen[threshold] = i
        inp = _num(item["input"], f"{p}.input") if "input" in item else base[0]
        out = _num(item["output"], f"{p}.output") if "output" in item else base[1]
        tiers.append((threshold, inp, out))
    return sorted(tiers)


def parse_pricing(block: Mapping[str, Any] | None, path: str = "pricing") -> Pricing | None:
    """Validate a config ``pricing`` block; errors name the JSON path (``models.X.pricing.input: expected number``)."""
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ConfigError(path, "expected object")
    unknown = sorted(set(block) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", f"unknown key; expected one of {', '.join(sorted(_TOP_KEYS))}")
    for key in ("input", "output"):
        if key not in block:
            raise ConfigError(f"{path}.{key}", "required (price per `per` tokens)")
    base = (_num(block["input"], f"{path}.input"), _num(block["output"], f"{path}.output"))
    currency = block.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        raise ConfigError(f"{path}.currency", "expected non-empty string")
    per = _num(block.get("per", 1_000_000), f"{path}.per", positive=True)
    volume = _tiers(block.get("volume_tiers", []), f"{path}.volume_tiers", "above_tokens", base)
    prompt = _tiers(block.get("prompt_tiers", []), f"{path}.prompt_tiers", "above_prompt_tokens", base)
    return Pricing(base[0], base[1], currency, per,
                   tuple(VolumeTier(*t) for t in volume), tuple(PromptTier(*t) for t in prompt))


# ---------------------------------------------------------------- periods


def period_start(ts: float) -> float:
    """Epoch second at which the billing period (calendar month, UTC) containing ``ts`` began."""
    month = np.datetime64(int(ts), "s").astype("datetime64[M]")
    return float(month.astype("datetime64[s]").astype(np.int64))


def next_period_start(start: float) -> float:
    """Epoch second at which the billing period after the one beginning at ``start`` begins."""
    month = np.datetime64(int(start), "s").astype("datetime64[M]") + 1
    return float(month.astype("datetime64[s]").astype(np.int64))


def _month_index(ts: np.ndarray) -> np.ndarray:
    """Months since 1970-01 (UTC) for each epoch second; a search among the few month starts the frame spans
    (several times faster than converting every value to datetime64[M])."""
    first = np.datetime64(int(np.floor(ts.min())), "s").astype("datetime64[M]")
    last = np.datetime64(int(np.floor(ts.max())), "s").astype("datetime64[M]")
    edges = np.arange(first, last + 1).astype("datetime64[s]").astype(np.int64).astype(np.float64)
    return np.searchsorted(edges, ts, side="right") - 1 + first.astype(np.int64)


def _codes(col: pd.Series) -> tuple[np.ndarray, Sequence[Any]]:
    import pandas as pd

    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy(), list(col.cat.categories)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return codes, list(uniques)


def _by_model_month(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Rows grouped by (model, UTC month), time order kept inside each group.

    Returns ``order`` (row positions in grouped order), the model code and the tokens of the same model and month
    before each row (both in grouped order), and the model labels. Each model is then one contiguous slice, which
    beats fancy-indexing scattered rows per model several times over.
    """
    n = len(df)
    ts = df["ts"].to_numpy(dtype=np.float64)
    tokens = df["prompt_tokens"].to_numpy(dtype=np.int64) + df["completion_tokens"].to_numpy(dtype=np.int64)
    codes, models = _codes(df["model"])
    months = _month_index(ts)
    months -= months.min()
    key = (codes.astype(np.int64) + 1) * (int(months.max()) + 1) + months  # one integer per (model, month)
    by_time = None if np.all(ts[1:] >= ts[:-1]) else np.argsort(ts, kind="stable")  # the store sorts by ts
    if by_time is not None:
        key = key[by_time]
    kmax = int(key.max())
    order = np.argsort(key.astype(np.int16 if kmax < 2**15 else np.int32 if kmax < 2**31 else np.int64),
                       kind="stable")  # a radix sort for small keys; stable keeps time order in each group
    k = key[order]
    if by_time is not None:
        order = by_time[order]
    tok = tokens[order]
    total = np.cumsum(tok)
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    base = np.repeat(total[starts] - tok[starts], np.diff(np.append(starts, n)))
    return order, codes[order], total - tok - base, models


def period_tokens_before(df: pd.DataFrame) -> np.ndarray:
    """Tokens of the same model in the same UTC month before each row (by ``ts``, ties in frame order)."""
    out = np.zeros(len(df), dtype=np.int64)
    if len(df):
        order, _, before, _ = _by_model_month(df)
        out[order] = before
    return out


def reprice(df: pd.DataFrame, pricing_by_model: Mapping[str, Pricing | None]) -> pd.Series:
    """Cost of every row under ``pricing_by_model`` (models without pricing cost 0), aligned to ``df.index``.

    Vectorised: one grouping pass for the running monthly tokens, then per model one contiguous slice and a
    ``searchsorted`` per kind of tier; no Python loop over rows.
    """
    import pandas as pd

    cost = np.zeros(len(df), dtype=np.float64)
    if len(df) == 0:
        return pd.Series(cost, index=df.index, name="cost")
    order, codes, before, models = _by_model_month(df)
    prompt = df["prompt_tokens"].to_numpy(dtype=np.int64)[order]
    completion = df["completion_tokens"].to_numpy(dtype=np.int64)[order]
    bounds = np.searchsorted(codes, np.arange(len(models) + 1), side="left")  # codes are sorted
    grouped = np.zeros(len(df), dtype=np.float64)
    for code, model in enumerate(models):
        pricing = pricing_by_model.get(model)
        lo, hi = int(bounds[code]), int(bounds[code + 1])
        if pricing is None or lo == hi:
            continue
        p, c = prompt[lo:hi], completion[lo:hi]
        v_thr = np.array([t.above_tokens for t in pricing.volume_tiers], dtype=np.int64)
        v_in = np.array([pricing.input] + [t.input for t in pricing.volume_tiers])
        v_out = np.array([pricing.output] + [t.output for t in pricing.volume_tiers])
        vi = np.searchsorted(v_thr, before[lo:hi], side="right")  # number of thresholds <= tokens before
        inp, out = v_in[vi], v_out[vi]
        if pricing.prompt_tiers:
            p_thr = np.array([t.above_prompt_tokens for t in pricing.prompt_tiers], dtype=np.int64)
            p_in = np.array([0.0] + [t.input for t in pricing.prompt_tiers])
            p_out = np.array([0.0] + [t.output for t in pricing.prompt_tiers])
            pi = np.searchsorted(p_thr, p, side="left")  # number of thresholds < prompt tokens
            long_prompt = pi > 0
            inp = np.where(long_prompt, p_in[pi], inp)
            out = np.where(long_prompt, p_out[pi], out)
        grouped[lo:hi] = (p * inp + c * out) / pricing.per
    cost[order] = grouped
    return pd.Series(cost, index=df.index, name="cost")
