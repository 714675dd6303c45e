"""Per-model pricing: the price types and their parsing, one small pure function for the live path; the vectorised
repricing of history and the billing periods are in ``repricing`` (re-exported here).

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

**Dated price books.** ``pricing`` may also be a list of such blocks, each with an ``effective_from`` date
(``"2026-11-01"``, midnight UTC, or an ISO datetime; without an offset it is UTC), in increasing order; the first
block may omit it (in effect since always). A row is priced by the block in effect at its ``ts``: the last one whose
``effective_from`` is <= ts (a row exactly at a change takes the new price). Before the first dated block no price
is in effect and a row costs 0. A change of price mid-month does not reset the month's volume: volume tiers count
every token of the month, whichever block priced it. All blocks of a book share one currency. Every usage row keeps
the cost it was billed at the time (``request_log.cost``), so editing a book never rewrites history; ``reprice``
is the what-if.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import numpy as np

from llm_manager.errors import ConfigError

from .repricing import (  # re-exported (see __all__)
    next_period_start,
    period_start,
    period_tokens_before,
    reprice,
)

__all__ = ["PriceBook", "Pricing", "PromptTier", "VolumeTier", "as_book", "next_period_start", "parse_pricing",
           "period_start", "period_tokens_before", "reprice"]

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


@dataclass(frozen=True, slots=True)
class PriceBook:
    """A model's prices over time: ``blocks[i]`` is in effect from ``starts[i]`` (epoch seconds, UTC; -inf for an
    undated first block) until the next start. One dict in the config is a book of one undated block."""

    starts: tuple[float, ...]
    blocks: tuple[Pricing, ...]

    @classmethod
    def single(cls, pricing: Pricing) -> PriceBook:
        return cls((float("-inf"),), (pricing,))

    def at(self, ts: float) -> Pricing | None:
        """The block in effect at ``ts`` (a row exactly at ``effective_from`` takes it); None before the first."""
        i = bisect.bisect_right(self.starts, ts) - 1
        return self.blocks[i] if i >= 0 else None

    def cost(self, prompt_tokens: int, completion_tokens: int, period_tokens_before: int = 0,
             ts: float | None = None) -> float:
        """Cost of one request under the block in effect at ``ts`` (default: now), tiers included."""
        pricing = self.at(time.time() if ts is None else ts)
        return pricing.cost(prompt_tokens, completion_tokens, period_tokens_before) if pricing else 0.0

    @property
    def currency(self) -> str:
        return self.blocks[0].currency

    def to_dict(self, ts: float | None = None) -> dict[str, Any]:
        """The block in effect at ``ts`` (default now; else the first) with its ``effective_from``, and the whole
        ``book`` when there is more than one block (the config's list form)."""
        now = time.time() if ts is None else ts
        i = max(0, bisect.bisect_right(self.starts, now) - 1)
        out = {**self.blocks[i].to_dict(), "effective_from": _iso(self.starts[i])}
        if len(self.blocks) > 1:
            out["book"] = self.to_config()
        return out

    def to_config(self) -> dict[str, Any] | list[dict[str, Any]]:
        """The config form: one dict for an undated single block, else the list of dated blocks."""
        if len(self.blocks) == 1 and self.starts[0] == float("-inf"):
            return self.blocks[0].to_dict()
        return [{**({"effective_from": _iso(s)} if s != float("-inf") else {}), **b.to_dict()}
                for s, b in zip(self.starts, self.blocks, strict=True)]


def as_book(pricing: Pricing | PriceBook | None) -> PriceBook | None:
    """A book for either form (``reprice`` callers may still pass plain ``Pricing`` blocks)."""
    return PriceBook.single(pricing) if isinstance(pricing, Pricing) else pricing


def _iso(ts: float) -> str | None:
    if ts == float("-inf"):
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


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


def parse_pricing(raw: Mapping[str, Any] | Sequence[Any] | None, path: str = "pricing") -> PriceBook | None:
    """Validate a config ``pricing`` value (one block or a list of dated blocks) into a price book; errors name the
    JSON path (``models.X.pricing.input: expected number``, ``models.X.pricing[1].effective_from: ...``)."""
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        return PriceBook.single(parse_block(raw, path))
    if not isinstance(raw, list):
        raise ConfigError(path, "expected object (one price) or list of price blocks with effective_from")
    if not raw:
        raise ConfigError(path, "expected at least one price block")
    starts: list[float] = []
    blocks: list[Pricing] = []
    for i, item in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(p, "expected object (a price block with effective_from)")
        if "effective_from" in item:
            start = _effective_from(item["effective_from"], f"{p}.effective_from")
        elif i == 0:
            start = float("-inf")
        else:
            raise ConfigError(f"{p}.effective_from", "required (every block after the first says when it starts)")
        if starts and start <= starts[-1]:
            raise ConfigError(f"{p}.effective_from", f"expected a date after {path}[{i - 1}]'s (blocks in "
                                                     "increasing date order)")
        block = parse_block({k: v for k, v in item.items() if k != "effective_from"}, p)
        if blocks and block.currency != blocks[0].currency:
            raise ConfigError(f"{p}.currency", f"expected {blocks[0].currency} (one currency per price book)")
        starts.append(start)
        blocks.append(block)
    return PriceBook(tuple(starts), tuple(blocks))


def _effective_from(value: Any, path: str) -> float:
    """``"2026-11-01"`` (midnight UTC) or an ISO datetime (UTC unless it carries an offset) -> epoch seconds."""
    expected = 'expected a date "YYYY-MM-DD" or an ISO datetime (UTC), e.g. "2026-11-01T00:00:00Z"'
    if not isinstance(value, str):
        raise ConfigError(path, expected)
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(path, expected) from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def parse_block(block: Mapping[str, Any], path: str = "pricing") -> Pricing:
    """Validate one price block (no ``effective_from``)."""
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
